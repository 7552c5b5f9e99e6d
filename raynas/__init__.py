"""raynas: supernet transfer learning for warm-started neural architecture search, on Ray."""

import os

# OpenMP threads that wait at a barrier spin GOMP_SPINCOUNT times, then sleep. Sleeping at once
# (OMP_WAIT_POLICY=PASSIVE, raynas' earlier setting) made a search step on an idle machine
# 1.4-2.1x slower: it pays a wake-up at each of the thousands of small parallel regions of a
# step. Spinning burns the time slice a descheduled partner needs beside a busy process (2
# threads: 3-4x slower there), which raynas.threads now avoids by dropping to fewer threads
# while other processes are busy. So threads spin up to libgomp's own bound, 300,000 times
# (short spins of 1,000 lost most of the idle speed); benchmarks/contention.py and
# docs/benchmarks.md have the numbers. OpenMP reads this once, when torch loads, so it is set
# here, before anything of raynas imports torch; the user's own settings are kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "300000")

__version__ = "0.1.0"


def load_model(source, **kwargs):
    """``model, preprocess = raynas.load_model(run_dir_or_model_dir_or_"zoo:NAME")``; see
    :func:`raynas.model.load.load_model` (imported here on first use, after the settings above)."""
    from raynas.model.load import load_model as load

    return load(source, **kwargs)
