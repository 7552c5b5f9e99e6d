"""A dataset several times the memory a step of the pipeline may hold goes through import ->
embedding -> ranking -> a short search with the streaming loader, in memory that does not grow
with it (issue 28's scale test; slow: it generates and imports 0.6 GB of PNGs and 6.9 GB of
.npz pixels, the latter in a memory cgroup of 2 GiB where the machine lets the test make one)."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

CHAIN = """
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image

root, kind, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
tiles = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(10)]
image = lambda i: np.roll(tiles[i % 10], i // 10, axis=1)  # class i % 10: its tile, shifted; a signal to learn
if kind == "imagefolder":
    src = root / "src"
    for c in range(10):
        (src / f"c{c}").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(image(i)).save(src / f"c{i % 10}" / f"{i}.png", compress_level=1)
else:  # an .npz written a block of images at a time: the generator holds no more than the import may
    import zipfile
    src = root / "big.npz"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (n, 64, 64, 3)})
            for start in range(0, n, 1000):
                fh.write(np.stack([image(i) for i in range(start, min(n, start + 1000))]).tobytes())
        with archive.open("y.npy", "w") as fh:
            np.save(fh, np.arange(n) % 10)
from raynas.data import DatasetStore
from raynas.data.importers import FILE_IMPORTS
from raynas.ot import EmbeddingStore, create_encoder
from raynas.search.config import SearchConfig
from raynas.search.loop import run_search
from raynas.storage import Storage

def peak():  # VmHWM: this process's own peak; ru_maxrss starts at the forking parent's (pytest's) peak
    with open("/proc/self/status") as fh:
        return int(next(line for line in fh if line.startswith("VmHWM:")).split()[1]) // 1024

store = DatasetStore(root / "home")
encoder = create_encoder("pixels", storage=Storage(root / "enc"), home=root / "home")
embeddings = EmbeddingStore(Storage(root / "emb"))
out = {"start_mb": peak()}
store.save_streamed(FILE_IMPORTS.get(kind)(src, name="big"))
out["import_mb"] = peak()
target = embeddings.ensure(store.open("big"), encoder)
source = embeddings.ensure(store.open("digits"), encoder)
out["embed_mb"] = peak()
ranking = embeddings.rank(target, ["digits"])
out["ranked"] = [s.name for s in ranking.sources]
out["rank_mb"] = peak()
result = run_search(SearchConfig(dataset="big", preset="tiny", epochs=1, max_steps_per_epoch=3, image_size=16,
                                 loader_backend="stream", transfer="scratch"), store=store, verbose=False)
out.update(search_mb=peak(), status=result.status, images=store.info("big").num_images)
print(json.dumps(out))
"""


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int):
    """A memory cgroup of its own with ``limit_bytes`` (page cache and child processes count, swap
    too where the kernel accounts it), as a path whose ``cgroup.procs`` a process joins; None where
    this machine offers none to create. Whatever still runs in it at the end is killed."""
    for root, limits in ((Path("/sys/fs/cgroup/memory"), ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")),
                         (Path("/sys/fs/cgroup"), ("memory.max", "memory.swap.max"))):  # v1, then v2
        group = root / f"raynas-scale-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / limits[0]).write_text(str(limit_bytes))
        except OSError:
            group.rmdir()
            continue
        with contextlib.suppress(OSError):  # no swap accounting: nothing to limit there
            (group / limits[1]).write_text(str(limit_bytes) if limits[1].endswith("in_bytes") else "0")
        try:
            yield group
        finally:
            for _ in range(20):  # Ray's processes outlive a killed run: end them, then remove the group
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
            with contextlib.suppress(OSError):
                group.rmdir()
        return
    yield None


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc/self/status")
@pytest.mark.parametrize("kind, n, limit_gib", [
    ("imagefolder", 48_000, None),  # 590 MB of pixels as PNG files: the import that peaked at 7.1 GB before it streamed
    ("npz", 560_000, 2),  # 6,881 MB of pixels: 11x the bound below, 3.2x the 2 GiB the whole run may use
])
def test_a_dataset_larger_than_a_step_may_hold_imports_ranks_and_trains_in_flat_memory(tmp_path, kind, n, limit_gib):
    with contextlib.ExitStack() as stack:
        group = stack.enter_context(memory_cgroup(limit_gib << 30)) if limit_gib else None

        command = [sys.executable, "-c", CHAIN, str(tmp_path), kind, str(n)]
        if group is not None:  # the shell joins the group, then becomes the run: all it starts (Ray too) is held
            command = ["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *command]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=1800)
            assert run.returncode == 0, (run.returncode, run.stderr[-3000:])  # -9: killed at the memory limit
            out = json.loads(run.stdout.strip().splitlines()[-1])
            assert out["images"] == n and out["status"] == "finished" and out["ranked"] == ["digits"]
            grown = {k: out[k] - out["start_mb"] for k in ("import_mb", "embed_mb", "rank_mb", "search_mb")}
            limit = f"run in a cgroup of {limit_gib} GiB" if group else "no memory cgroup to run in (measured only)"
            print(f"{kind}, {n:,} images: peak RSS {out['start_mb']} MB after start-up, grown by {grown}; {limit}")
            # flat: each step holds row groups and samples, not the pixels (let alone 12x them, as before)
            assert max(grown.values()) < 600, (out, grown)
        finally:  # gigabytes: not left for pytest's kept temp dirs
            for child in tmp_path.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
