"""Entrypoint for `ray job submit`: runs one raynas command inside a Ray job.

    ray job submit --address http://HEAD:8265 --working-dir . --entrypoint-num-gpus 1 \
        -- python jobs/raynas_job.py search glyph-digits --preset gpu --epochs 50 --home /mnt/shared/raynas

The command runs in the job's driver process, which Ray places on a node with the requested
resources (`--entrypoint-num-cpus/gpus`); with `--home` on shared storage the run directory
is visible from every node. Arguments are exactly those of the `raynas` command line.
"""

import sys

from raynas.cli import main

if __name__ == "__main__":
    # Commands that need Ray connect when they need it (Ray sets RAY_ADDRESS for job drivers),
    # and then use the cluster's zoo and embedding actors.
    sys.exit(main(sys.argv[1:]))
