"""Entrypoint for `ray job submit`: pretrain the zoo on the cluster (`raynas zoo build`).

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/build_zoo.py --exclude glyph-digits --preset gpu --device cuda --epochs 50 \
            --home /mnt/raynas/home --storage /mnt/raynas/storage

Takes exactly the arguments of `raynas zoo build` (see `python jobs/build_zoo.py --help`).
Sources pretrain in parallel as Ray tasks (one CPU each, and one GPU each when the cluster has
GPUs) and publish through the cluster's zoo actor; a rerun after an interruption pretrains only
the sources that are missing.
"""

import sys

from raynas.cli import run

if __name__ == "__main__":
    run(["zoo", "build", *sys.argv[1:]])
