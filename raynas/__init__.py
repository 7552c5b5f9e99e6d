"""raynas: supernet transfer learning for warm-started neural architecture search, on Ray."""

import os

# OpenMP threads that wait for each other spin by default. On a shared machine (Tune packs
# trials onto nodes, other users run jobs) a spinning thread burns the core its partner is
# waiting for: a search step beside one busy process took 3x its time alone, against about
# 1.5x with passive waiting (benchmarks/contention.py). OpenMP reads this once, when torch
# loads, so it is set here, before anything of raynas imports torch; a value set by the user
# is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
