"""Bilevel search algorithms, one module each, registered by name (``--algo``)."""

from raynas.search.algorithms.base import ALGORITHMS, SearchAlgorithm, StepContext, create_algorithm
from raynas.search.algorithms import darts, drnas, pcdarts  # noqa: F401,E402  (registration)

__all__ = ["ALGORITHMS", "SearchAlgorithm", "StepContext", "create_algorithm"]
