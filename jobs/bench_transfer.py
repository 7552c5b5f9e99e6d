"""Entrypoint for `ray job submit`: the transfer benchmark on the cluster (`raynas bench transfer`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/bench_transfer.py --preset gpu --epochs 50 --max-steps 200 --seeds 3 --gpus-per-trial 0.5 \
            --home /mnt/raynas/home --storage /mnt/raynas/storage --out /mnt/raynas/bench/transfer

Takes exactly the arguments of `raynas bench transfer` (see `python jobs/bench_transfer.py --help`).
The sources pretrain as Ray tasks and the arms run as Ray Tune trials across the nodes; `--home`,
`--storage` and `--out` must be shared by every node. Submitting the same command again continues
an interrupted benchmark.
"""

import sys

from raynas.cli import run

if __name__ == "__main__":
    run(["bench", "transfer", *sys.argv[1:]])
