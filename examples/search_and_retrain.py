"""Search an architecture from scratch on a built-in dataset, resume it, and retrain the result.

    python examples/search_and_retrain.py [--home DIR] [--dataset glyph-digits] [--algo darts]

One search experiment (:func:`raynas.experiment.run_experiment`), stopped by a callback after
two epochs and resumed from its checkpoint, which carries the config. Uses the `tiny` preset
so it finishes in well under a minute on a laptop CPU.
"""

import argparse
import tempfile
from pathlib import Path

from raynas.experiment import ExperimentConfig, run_experiment
from raynas.search.config import SearchConfig
from raynas.search.loop import StopSearch
from raynas.search.retrain import RetrainConfig
from raynas.workspace import Workspace


class StopAfter:
    """A callback: end the search after `epochs` epochs (the run directory keeps a checkpoint)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, metrics, state):
        print(f"  callback saw epoch {metrics['epoch']}: val acc {metrics['val_acc']:.3f}")
        if state.epoch == self.epochs:
            raise StopSearch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--home", default=None)
    p.add_argument("--dataset", default="glyph-digits")
    p.add_argument("--algo", default="darts")
    args = p.parse_args()
    workspace = Workspace.open(Path(args.home or tempfile.mkdtemp(prefix="raynas-example-")))
    config = ExperimentConfig(
        SearchConfig(dataset=args.dataset, algo=args.algo, preset="tiny", epochs=4, max_steps_per_epoch=10,
                     transfer="scratch"),
        retrain=RetrainConfig(epochs=3, channels=8, cells=5))
    run_dir = workspace.home / "runs" / "example"

    first = run_experiment(config, workspace, run_dir=run_dir, callbacks=[StopAfter(2)])
    print(f"stopped after {len(first.search.history)} epochs ({first.search.status}); resuming from "
          f"{run_dir / 'checkpoint'}")
    done = run_experiment(config, workspace, run_dir=run_dir, checkpoint=run_dir / "checkpoint")
    print(f"\nfound ({done.search.status}, {len(done.search.history)} epochs):\n{done.search.genotype}\n")
    print(f"retrained test accuracy {done.retrain['test_acc']:.3f} (chance {done.retrain['chance_acc']:.3f})")
    print(f"run directory: {run_dir} (result.json, genotype.json, genotype.png, alphas.png, curves.png)")


if __name__ == "__main__":
    main()
