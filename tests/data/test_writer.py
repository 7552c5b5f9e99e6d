"""Streamed imports: the same dataset file and content hash as in memory, in memory that does not grow."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import raynas.data.format as format_mod
from raynas.data.format import read_dataset, read_info, write_dataset
from raynas.data.importers import FILE_IMPORTS
from raynas.errors import RaynasError
from raynas.storage import exclusive_path


@pytest.fixture(autouse=True)
def _one_import_time(monkeypatch):
    """Two imports of one source, compared field by field, must not differ by the second each ran in."""
    import raynas.data.importers as importers

    stamped = importers._provenance
    monkeypatch.setattr(importers, "_provenance",
                        lambda *a, **k: dict(stamped(*a, **k), imported_at="2026-01-01T00:00:00+00:00"))


def _folder(root, classes=3, per_class=5, size=(9, 9), color=True, gray_rgb=False, seed=0):
    """Images in a class-per-folder tree: random colour, or gray (as L files or as RGB files with equal channels)."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            if color:
                img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
            else:
                plane = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
                img = Image.fromarray(np.stack([plane] * 3, -1) if gray_rgb else plane)
            img.save(root / f"c{c}" / f"{i}.png")
    return root


def _both(tmp_path, plan, **options):
    """The dataset written in memory and streamed: (in-memory file, streamed file, streamed info)."""
    in_memory = write_dataset(plan.dataset(**options), tmp_path / "memory.parquet")
    with exclusive_path(tmp_path / "streamed.parquet") as tmp:
        info = plan.write(tmp, **options)
    return in_memory, tmp_path / "streamed.parquet", info


@pytest.mark.parametrize("folder, options, shape", [
    (dict(color=True), {}, (3, 9, 9)),
    (dict(color=False), {}, (1, 9, 9)),  # all gray: a second pass makes them one channel
    (dict(color=False, gray_rgb=True), {}, (1, 9, 9)),
    (dict(color=True), dict(channels=1), (1, 9, 9)),
    (dict(color=False), dict(channels=3), (3, 9, 9)),
    (dict(color=True, size=(12, 7)), dict(image_size=6, seed=3), (3, 6, 6)),
])
def test_a_streamed_import_is_the_in_memory_one(tmp_path, monkeypatch, folder, options, shape):
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 4 * 3 * 81)  # 4 images a row group: several chunks
    plan = FILE_IMPORTS.get("imagefolder")(_folder(tmp_path / "src", **folder), name="mine")
    memory, streamed, info = _both(tmp_path, plan, **options)
    assert info == read_info(streamed) == read_info(memory) and info.shape == shape
    a, b = read_dataset(memory, verify=True), read_dataset(streamed, verify=True)  # hashes recomputed
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.splits, b.splits)
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(streamed)
    rows = format_mod.ROW_GROUP_BYTES // (3 * shape[1] * shape[2])  # images are read as RGB
    assert parquet.num_row_groups == -(-15 // rows) > 1  # one row group per chunk
    assert parquet.schema_arrow.metadata[b"content_hash"].decode() == info.content_hash  # for any Arrow reader


def test_a_streamed_meta_album_import_is_the_in_memory_one(tmp_path):
    root = _folder(tmp_path / "ma" / "images", classes=2, per_class=4)
    rows = [(f"c{c}/{i}.png", f"class{c}") for c in range(2) for i in range(4)]
    (tmp_path / "ma" / "labels.csv").write_text("FILE_NAME,CATEGORY\n" + "".join(f"{f},{c}\n" for f, c in rows))
    plan = FILE_IMPORTS.get("meta-album")(root.parent, name="ma")
    memory, streamed, info = _both(tmp_path, plan)
    assert read_info(memory) == info and info.domain == "meta-album"


def _npz_x(kind, rng):
    n = 14
    if kind == "nchw":
        return rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)
    if kind == "nhw":
        return rng.integers(0, 256, (n, 8, 8), dtype=np.uint8)
    if kind == "nhwc-rgba":
        return rng.integers(0, 256, (n, 8, 10, 4), dtype=np.uint8)
    if kind == "float01-nhwc":  # floats in 0..1: scaled by 255 in every chunk alike
        return rng.random((n, 8, 8, 3)).astype(np.float32)
    if kind == "float255-nchw":  # floats up to 255, big-endian: kept as they are
        return (rng.random((n, 3, 8, 8)) * 255).astype(">f8")
    if kind == "float-mixed":  # the first chunks in 0..1, the last up to 255: no chunk is scaled
        x = rng.random((n, 3, 8, 8))
        x[n // 2:] *= 255
        return x
    if kind == "int16-nhw":
        return rng.integers(0, 256, (n, 8, 8)).astype(np.int16)
    plane = rng.integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)
    return np.concatenate([plane] * 3, axis=3)  # gray stored as RGB


@pytest.mark.parametrize("kind, options, shape", [
    ("nchw", {}, (3, 8, 8)),
    ("nhw", {}, (1, 8, 8)),
    ("nhwc-rgba", dict(image_size=6), (3, 6, 6)),  # alpha dropped, centre-cropped and resized
    ("gray-rgb", {}, (1, 8, 8)),  # all gray: one channel after the second pass
    ("nchw", dict(channels=1, seed=2), (1, 8, 8)),
    ("float01-nhwc", {}, (3, 8, 8)),
    ("float255-nchw", dict(image_size=4), (3, 4, 4)),
    ("int16-nhw", {}, (1, 8, 8)),
    ("float-mixed", {}, (3, 8, 8)),
])
def test_a_streamed_npz_import_is_the_in_memory_one(tmp_path, monkeypatch, kind, options, shape):
    from raynas.data.importers import IMPORTERS

    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 4 * 3 * 80)  # a few images a chunk
    rng = np.random.default_rng(0)
    x = _npz_x(kind, rng)
    np.savez_compressed(tmp_path / "in.npz", x=x, y=np.array(["cat", "dog"] * 7))
    plan = FILE_IMPORTS.get("npz")(tmp_path / "in.npz", name="arr")
    with exclusive_path(tmp_path / "streamed.parquet") as tmp:
        info = plan.write(tmp, **options)
    memory = write_dataset(IMPORTERS.get("npz")(tmp_path / "in.npz", name="arr", **options), tmp_path / "m.parquet")
    assert info == read_info(memory) and info.shape == shape and info.class_names == ("cat", "dog")
    a, b = read_dataset(memory, verify=True), read_dataset(tmp_path / "streamed.parquet", verify=True)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.splits, b.splits)


def test_fortran_npz_images_are_imported_whole(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.asfortranarray(np.zeros((8, 3, 4, 4), np.uint8)), y=np.arange(8) % 2)
    assert FILE_IMPORTS.get("npz")(tmp_path / "o.npz", name="o") is None


@pytest.mark.parametrize("last, dtype, message", [(np.nan, np.float32, "NaN or infinite"),
                                                  (300.0, np.float64, "pixel values span 0..300"),
                                                  (0, np.complex64, "dtype complex64")])
def test_bad_npz_pixel_values_are_refused_before_anything_is_written(tmp_path, monkeypatch, last, dtype, message):
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 48)  # a chunk per image: the range is the whole array's
    x = np.zeros((8, 3, 4, 4), dtype)
    x[-1] = last  # only the last image is bad
    np.savez(tmp_path / "f.npz", x=x, y=np.arange(8) % 2)
    plan = FILE_IMPORTS.get("npz")(tmp_path / "f.npz", name="f")
    with pytest.raises(RaynasError, match=message):
        with exclusive_path(tmp_path / "f.parquet") as tmp:
            plan.write(tmp)
    assert not (tmp_path / "f.parquet").exists()


def test_a_truncated_npz_is_a_clear_error(tmp_path):
    x = np.zeros((8, 3, 4, 4), np.uint8)
    np.savez(tmp_path / "t.npz", x=x, y=np.arange(8) % 2)
    plan = FILE_IMPORTS.get("npz")(tmp_path / "t.npz", name="t")
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[:200] + data[300:])  # pixels cut out of the stored member
    with pytest.raises(RaynasError, match="cannot read .*t.npz"):
        with exclusive_path(tmp_path / "t.parquet") as tmp:
            plan.write(tmp)
    assert not (tmp_path / "t.parquet").exists()


def _png(pixels) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _write_input(table, path):
    """``table`` as a Parquet file or an Arrow IPC file (by the suffix), in batches of 5 rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix == ".parquet":
        pq.write_table(table, path, row_group_size=5)
    else:
        with pa.ipc.new_file(str(path), table.schema) as sink:
            for batch in table.to_batches(max_chunksize=5):
                sink.write_batch(batch)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
@pytest.mark.parametrize("cells, options, shape", [
    ("bytes", {}, (3, 8, 8)),
    ("struct", dict(image_size=6), (3, 6, 6)),  # {bytes, path}, as Hugging Face datasets write images
    ("gray-bytes", {}, (1, 8, 8)),
    ("tensor", dict(channels=1), (1, 8, 8)),
])
def test_a_streamed_parquet_import_is_the_in_memory_one(tmp_path, monkeypatch, cells, options, shape, suffix):
    import pyarrow as pa

    from raynas.data.importers import IMPORTERS

    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", 3 * 3 * 64)  # a few images a chunk
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (8, 8) if cells == "gray-bytes" else (8, 8, 3), dtype=np.uint8) for _ in range(12)]
    if cells == "tensor":
        column = format_mod.tensor_column(np.stack([p.transpose(2, 0, 1) for p in pixels]))
    elif cells == "struct":
        column = pa.array([{"bytes": _png(p), "path": f"{i}.png"} for i, p in enumerate(pixels)])
    else:
        column = pa.array([_png(p) for p in pixels], type=pa.binary())
    src = _write_input(pa.table({"image": column, "label": pa.array(["b", "a", "c"] * 4)}), tmp_path / f"in{suffix}")
    plan = FILE_IMPORTS.get("parquet")(src, name="pq")
    with exclusive_path(tmp_path / "streamed.parquet") as tmp:
        info = plan.write(tmp, **options)
    memory = write_dataset(IMPORTERS.get("parquet")(src, name="pq", **options), tmp_path / "m.parquet")
    assert info == read_info(memory) and info.shape == shape and info.class_names == ("a", "b", "c")
    assert info.provenance["format"] == ("arrow" if suffix == ".arrow" else "parquet")
    a, b = read_dataset(memory, verify=True), read_dataset(tmp_path / "streamed.parquet", verify=True)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize("table, message", [
    (lambda pa: pa.table({"picture": [b"x"], "label": [0]}), "has no 'image' column"),
    (lambda pa: pa.table({"image": [1.5], "label": [0]}), "its image column is double"),
    (lambda pa: pa.table({"image": [b"not an image"] * 6, "label": [0, 1] * 3}), "row 0"),
    (lambda pa: pa.table({"image": [b"x", b"y"], "label": pa.array([0, None])}), "1 row(s) have no label"),
])
@pytest.mark.parametrize("suffix", [".parquet", ".feather"])
def test_bad_parquet_input_is_a_clear_error(tmp_path, table, message, suffix):
    import pyarrow as pa

    from raynas.data import DatasetStore

    src = _write_input(table(pa), tmp_path / f"in{suffix}")
    store = DatasetStore(tmp_path / "home")
    with pytest.raises(RaynasError) as err:
        store.save_streamed(FILE_IMPORTS.get("parquet")(src, name="bad"))
    assert message in str(err.value) and list(store.folder.iterdir()) == []


def test_a_file_that_is_not_arrow_is_a_clear_error(tmp_path):
    (tmp_path / "in.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(RaynasError, match="cannot read .*in.arrow as an Arrow IPC file"):
        FILE_IMPORTS.get("arrow")(tmp_path / "in.arrow", name="bad")


def test_a_bad_image_midway_leaves_nothing_behind(tmp_path):
    from raynas.data import DatasetStore

    src = _folder(tmp_path / "src", per_class=4)
    (src / "c1" / "2.png").write_bytes(b"not a png")
    store = DatasetStore(tmp_path / "home")
    with pytest.raises(RaynasError, match="2.png"):
        store.save_streamed(FILE_IMPORTS.get("imagefolder")(src, name="broken"))
    assert list(store.folder.iterdir()) == []  # no dataset, no temporary file


PEAK = """
import json, resource, sys
from pathlib import Path
import numpy as np
from PIL import Image
root, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
tile = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
for c in range(10):
    (root / "src" / f"c{c}").mkdir(parents=True)
for i in range(n):
    Image.fromarray(np.roll(tile, i, axis=1)).save(root / "src" / f"c{i % 10}" / f"{i}.png", compress_level=1)
from raynas.data import DatasetStore
from raynas.data.importers import FILE_IMPORTS
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, info = DatasetStore(root / "home").save_streamed(FILE_IMPORTS.get("imagefolder")(root / "src", name="big"))
print(json.dumps({"before_kb": before, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "images": info.num_images}))
"""


@pytest.mark.slow
def test_import_memory_does_not_grow_with_the_dataset(tmp_path):
    """12,000 and 36,000 64x64 RGB PNGs (147 and 442 MB of pixels; 10 and 27 row groups): the same peak."""
    peaks = {}
    for n in (12000, 36000):
        out = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / str(n)), str(n)], capture_output=True,
                             text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        assert result["images"] == n
        peaks[n] = (result["peak_kb"] - result["before_kb"]) / 1024  # above the imports' own
    # in memory the import held about 12x the pixels (5.3 GB for the larger); streamed, one row group's worth
    assert abs(peaks[36000] - peaks[12000]) < 150, peaks
    assert peaks[36000] < 800, peaks


def test_the_cli_imports_an_arrow_file_by_its_suffix(tmp_path, capsys):
    import pyarrow as pa

    from raynas.cli import main

    rng = np.random.default_rng(0)
    column = pa.array([_png(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(12)], type=pa.binary())
    src = _write_input(pa.table({"image": column, "label": [0, 1, 2] * 4}), tmp_path / "in.feather")
    assert main(["data", "import", str(src), "--name", "arr", "--home", str(tmp_path / "home"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 12 and out["provenance"]["format"] == "arrow"
