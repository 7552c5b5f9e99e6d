"""raynas: supernet transfer learning for warm-started neural architecture search, on Ray."""

__version__ = "0.1.0"
