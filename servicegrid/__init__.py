"""ServiceGrid Studio: the original library API (``servicegrid.service``, ``servicegrid.graph``)
and the ``servicegrid`` command line."""

__version__ = "0.1.0"
