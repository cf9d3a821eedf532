"""Streamlit side of ServiceGrid Studio: cached services, session keys, forms, renderers, the canvas."""
