# The original article's program, unchanged: prints "Resource demand: 3, Execution time: 6".
# ruff: noqa: I001
from servicegrid.service import Service
from servicegrid.graph import Graph

class ImagePreprocessingService(Service):
    def __init__(self, compute_resource=1, execution_time=2):
        self.compute_resource = compute_resource
        self.execution_time = execution_time

class ImageClassificationService(Service):
    def __init__(self, compute_resource=2, execution_time=4):
        self.compute_resource = compute_resource
        self.execution_time = execution_time

preprocessing_service = ImagePreprocessingService()
classification_service = ImageClassificationService()
graph = Graph()
graph.add_node("preprocessing", preprocessing_service)
graph.add_node("classification", classification_service)
graph.add_edge("preprocessing", "classification")
graph.set_node_resource("preprocessing", compute_resource=1, execution_time=2)
graph.set_node_resource("classification", compute_resource=2, execution_time=4)
graph.execute()
print(f"Resource demand: {graph.get_total_resource()}, Execution time: {graph.get_total_time()}")
