"""Benchmarks of the method itself: ``transfer`` measures what warm starts buy over search
from scratch (:func:`raynas.bench.transfer.run_transfer_bench`)."""
