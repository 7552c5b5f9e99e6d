"""Entrypoint for `ray job submit`: race warm-started searches on the cluster (`raynas search`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/search.py glyph-digits --preset gpu --device cuda --epochs 50 --race 3 --baseline --retrain \
            --publish --home /mnt/raynas/home --storage /mnt/raynas/storage

Takes exactly the arguments of `raynas search` (see `python jobs/search.py --help`). The job's
driver connects to the cluster (Ray sets RAY_ADDRESS for it), the trials run as Ray Tune trials
on the nodes with the resources asked for (`--gpus-per-trial`, `--cpus-per-trial`), and read
the zoo from `--storage`, which every node must see (a mount or an s3:// or gs:// URI), and the
datasets from their node's `--home` (fetched there from `--storage` when imported with it).
"""

import sys

from raynas.cli import run

if __name__ == "__main__":
    run(["search", *sys.argv[1:]])
