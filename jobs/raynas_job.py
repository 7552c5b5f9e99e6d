"""Entrypoint for `ray job submit`: runs one raynas command inside a Ray job.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/raynas_job.py search glyph-digits --preset gpu --device cuda --epochs 50 \
            --home /mnt/raynas/home --storage /mnt/raynas/storage

The command runs in the job's driver process, which needs no GPU: submit it without
`--entrypoint-num-gpus` (and `--entrypoint-num-cpus`), so that the driver reserves nothing and
can run on the head, where the cluster/ configs give Ray no CPU or GPU; the trials and tasks it
starts reserve their own (`--gpus-per-trial`, `--cpus-per-trial`). With `--home` on shared
storage the run directory is visible from every node. Arguments are exactly those of the
`raynas` command line.
"""

import sys

from raynas.cli import run

if __name__ == "__main__":
    # Commands that need Ray connect when they need it (Ray sets RAY_ADDRESS for job drivers),
    # and then use the cluster's zoo and embedding actors.
    run(sys.argv[1:])
