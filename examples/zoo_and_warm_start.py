"""Build a small zoo, rank it for a new dataset by OT distance, and race warm starts in Ray Tune.

    python examples/zoo_and_warm_start.py [--home DIR] [--target glyph-digits]

Pretrains three tiny supernets (one per source dataset, target left out), prints the OT
ranking of the sources for the target, then races the sources and a search from scratch as
Ray Tune trials with the same budget (ASHA stops the trailing ones) and prints the
leaderboard. Uses the `tiny` preset so it finishes in a few minutes on a laptop CPU.
"""

import argparse
import tempfile

from raynas.experiment import ExperimentConfig
from raynas.race.config import RaceConfig
from raynas.race.race import run_race
from raynas.search.config import SearchConfig
from raynas.transfer.ranking import rank_zoo
from raynas.workspace import Workspace
from raynas.zoo.build import plan_jobs, run_jobs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="raynas home (default: a temporary directory)")
    parser.add_argument("--target", default="glyph-digits")
    parser.add_argument("--sources", default="glyph-upper,mnist5k,textures")
    args = parser.parse_args()
    workspace = Workspace.open(args.home or tempfile.mkdtemp(prefix="raynas-example-"))

    # 1. pretrain one supernet per source and publish it with its OT embedding
    template = SearchConfig(dataset=args.target, preset="tiny", epochs=2, max_steps_per_epoch=8)
    jobs, _ = plan_jobs(args.sources.split(","), template, workspace)
    for row in run_jobs(jobs, verbose=False):
        print(f"published {row['name']}: val acc {row['accuracy']:.3f}")

    # 2. rank the zoo's sources for the target
    ranked = rank_zoo(args.target, workspace.zoo.list(), workspace.store, workspace.embeddings,
                      workspace.encoder("pixels"))
    for row in ranked.rows():
        print(f"  {row['rank']}. {row['source']:<14} {row['method']} distance {row['distance']:.4g}")

    # 3. race the three sources and a search from scratch, same budget each
    config = ExperimentConfig(SearchConfig(dataset=args.target, preset="tiny", epochs=3, max_steps_per_epoch=8),
                              RaceConfig(race=3, baseline=True))
    race = run_race(config, workspace, verbose=False).answer
    for row in race["leaderboard"]:
        curve = " ".join(f"{a:.3f}" for a in row["val_acc_curve"])
        print(f"{row['rank']}. {row['source']:>12} ({row['status']}): val acc by epoch {curve}")
    print(f"winner: {race['winner']['source']}; run directory: {race['run_dir']}")


if __name__ == "__main__":
    main()
