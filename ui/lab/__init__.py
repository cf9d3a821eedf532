"""The Scheduling Lab page: compare policies, the optimum, what-if, step mode, waits, learned estimates."""
