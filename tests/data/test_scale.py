"""A dataset several times the memory a step of the pipeline may hold goes through import ->
embedding -> ranking -> a short search with the streaming loader, in memory that does not grow
with it (issue 28's scale test; slow: it generates and imports ~0.6 GB of pixels)."""

import json
import subprocess
import sys

import pytest

CHAIN = """
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image

root, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
tiles = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(10)]
for c in range(10):
    (root / "src" / f"c{c}").mkdir(parents=True)
for i in range(n):  # class c: its own tile, shifted; cheap to write, a real signal to learn
    Image.fromarray(np.roll(tiles[i % 10], i // 10, axis=1)).save(root / "src" / f"c{i % 10}" / f"{i}.png",
                                                                  compress_level=1)
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
store.save_streamed(FILE_IMPORTS.get("imagefolder")(root / "src", name="big"))
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


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak RSS from /proc/self/status")
def test_a_dataset_larger_than_a_step_may_hold_imports_ranks_and_trains_in_flat_memory(tmp_path):
    n = 48_000  # 590 MB of pixels: the import that peaked at 7.1 GB before it streamed
    run = subprocess.run([sys.executable, "-c", CHAIN, str(tmp_path), str(n)], capture_output=True, text=True,
                         timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["images"] == n and out["status"] == "finished" and out["ranked"] == ["digits"]
    grown = {k: out[k] - out["start_mb"] for k in ("import_mb", "embed_mb", "rank_mb", "search_mb")}
    # flat: each step holds row groups and samples, not the 590 MB of pixels (let alone 12x them)
    assert max(grown.values()) < 600, (out, grown)
