"""Search an architecture from scratch on a built-in dataset, resume it, and retrain the result.

    python examples/search_and_retrain.py [--home DIR] [--dataset glyph-digits] [--algo darts]

Uses the `tiny` preset so it finishes in well under a minute on a laptop CPU.
"""

import argparse
import tempfile
from pathlib import Path

from raynas.data import DatasetStore
from raynas.search.config import SearchConfig
from raynas.search.loop import StopSearch, run_search
from raynas.search.retrain import RetrainConfig, retrain


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
    home = Path(args.home or tempfile.mkdtemp(prefix="raynas-example-"))
    store = DatasetStore(home)
    config = SearchConfig(dataset=args.dataset, algo=args.algo, preset="tiny", epochs=4, max_steps_per_epoch=10)
    run_dir = home / "runs" / "example"

    first = run_search(config, store=store, run_dir=run_dir, callbacks=[StopAfter(2)])
    print(f"stopped after {len(first.history)} epochs; resuming from {run_dir / 'checkpoint'}")
    result = run_search(config, store=store, run_dir=run_dir, resume=True)
    print(f"\nfound ({result.status}, {len(result.history)} epochs):\n{result.genotype}\n")

    scores = retrain(result.genotype, RetrainConfig(dataset=args.dataset, epochs=3, image_size=8, channels=8,
                                                    cells=5), store, run_dir)
    print(f"retrained test accuracy {scores['test_acc']:.3f} (chance {scores['chance_acc']:.3f})")
    print(f"run directory: {run_dir} (result.json, genotype.json, genotype.png, alphas.png, curves.png)")


if __name__ == "__main__":
    main()
