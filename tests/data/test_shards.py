"""Sharded datasets: a folder of Parquet shards and ``_dataset.json``, written and read like one file.

SHARD_BYTES and ROW_GROUP_BYTES are made small, so a few dozen 8x8 images make several shards of
a few row groups each; a dataset that fits one shard is the single file it always was.
"""

import dataclasses
import errno
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

import raynas.data.format as format_mod
from raynas.cli import main
from raynas.data import DatasetStore, make_dataset
from raynas.data.builtin import BUILTINS
from raynas.data.format import INDEX_FILE, read_dataset, read_info, write_dataset
from raynas.data.importers import FILE_IMPORTS, row_order
from raynas.errors import RaynasError
from raynas.storage import STALE_TEMP_AGE_S, remove_stale_temps

RGB = 3 * 8 * 8  # bytes of one 8x8 RGB image
SHARD = 10 * RGB  # at most 10 RGB images a shard
GROUP = 4 * RGB  # row groups (import chunks) of 4 RGB images
N = 48  # images in each source: 3 classes of 16


@pytest.fixture
def small_shards(monkeypatch):
    monkeypatch.setattr(format_mod, "SHARD_BYTES", SHARD)
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", GROUP)


@pytest.fixture(autouse=True)
def _no_builtins(monkeypatch):
    """The built-in suite is not the subject here: `data list` builds none."""
    monkeypatch.setattr(BUILTINS, "_items", {})


def _pixels(seed=0, gray=False):
    rng = np.random.default_rng(seed)
    if gray:
        return np.repeat(rng.integers(0, 256, (N, 1, 8, 8), dtype=np.uint8), 3, axis=1)
    return rng.integers(0, 256, (N, 3, 8, 8), dtype=np.uint8)


def _png(chw) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(chw.transpose(1, 2, 0)).save(out, format="PNG")
    return out.getvalue()


def _source(root, kind, seed=0, bad_row=None):
    """The same images as a class-per-folder tree, an .npz or a Parquet file of PNG bytes."""
    pixels = _pixels(seed, gray=kind == "imagefolder-gray")
    labels = np.arange(N) // (N // 3)
    root.mkdir(parents=True)
    if kind.startswith("imagefolder"):
        for i, (x, y) in enumerate(zip(pixels, labels)):
            (root / f"c{y}").mkdir(exist_ok=True)
            path = root / f"c{y}" / f"{i:03d}.png"
            path.write_bytes(b"not a png" if i == bad_row else _png(x))
        return "imagefolder", root
    if kind == "npz":
        np.savez(root / "in.npz", x=pixels, y=np.array([f"k{y}" for y in labels]))
        return "npz", root / "in.npz"
    pq.write_table(pa.table({"image": pa.array([_png(x) for x in pixels], pa.binary()), "label": labels}),
                   root / "in.parquet", row_group_size=7)
    return "parquet", root / "in.parquet"


def _import(store, kind, src, name="big", **options):
    return store.save_streamed(FILE_IMPORTS.get(kind)(src, name=name), **options)


def _same_info(a, b):
    """Equal but for the import time."""
    assert dataclasses.replace(a, provenance={}) == dataclasses.replace(b, provenance={})
    assert {k: v for k, v in a.provenance.items() if k != "imported_at"} == \
        {k: v for k, v in b.provenance.items() if k != "imported_at"}


def _shards(folder):
    return sorted(p.name for p in folder.glob("part-*.parquet"))


# -- 1. a large import becomes shards, with the data and hash of one file ---------------------------

@pytest.mark.parametrize("kind, shape, shards", [
    ("imagefolder", (3, 8, 8), 6),  # 4 + 4 images a shard: a third group would pass 10
    ("imagefolder-gray", (1, 8, 8), 2),  # read as RGB (6 shards), then a second pass: 28 + 20 gray images
    ("npz", (3, 8, 8), 6),
    ("parquet", (3, 8, 8), 6),
])
def test_a_large_import_is_sharded_and_equals_the_single_file(tmp_path, monkeypatch, kind, shape, shards):
    fmt, src = _source(tmp_path / "src", kind)
    single = DatasetStore(tmp_path / "one")
    one_path, one_info = _import(single, fmt, src)
    assert one_path == single.folder / "big.parquet" and one_path.is_file()

    monkeypatch.setattr(format_mod, "SHARD_BYTES", SHARD)
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", GROUP)
    store = DatasetStore(tmp_path / "sharded")
    path, info = _import(store, fmt, src)
    assert path == store.folder / "big" == store.path("big") and path.is_dir()
    assert sorted(os.listdir(store.folder)) == ["big"]  # no temporary entry left
    assert sorted(os.listdir(path)) == [INDEX_FILE] + _shards(path)
    assert _shards(path) == [f"part-{i:05d}.parquet" for i in range(shards)]
    _same_info(info, one_info)
    assert info.shape == shape and info.content_hash == one_info.content_hash
    assert read_info(path) == store.info("big") == info

    index = json.loads((path / INDEX_FILE).read_text())
    assert [s["file"] for s in index["shards"]] == _shards(path) and sum(s["rows"] for s in index["shards"]) == N
    image_bytes = int(np.prod(shape))
    for entry in index["shards"]:
        parquet = pq.ParquetFile(path / entry["file"])
        assert parquet.metadata.num_rows == entry["rows"] and 0 < entry["rows"] * image_bytes <= SHARD
        groups = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
        assert max(groups) <= 4  # row groups bounded as in a single file

    a, b = single.load("big", verify=True), store.load("big", verify=True)  # verify: the hash over all shards
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.splits, b.splits)

    one, parts = single.open("big"), store.open("big")
    assert np.array_equal(one.labels, parts.labels) and np.array_equal(one.splits, parts.splits)
    groups = parts.row_groups
    assert len({g.path for g in groups}) == shards and [g.start for g in groups] == \
        list(np.cumsum([0] + [g.rows for g in groups[:-1]]))
    assert sum(g.rows for g in groups) == N
    assert np.array_equal(np.concatenate([parts.group_images(g) for g in groups]), a.images)
    rows = np.random.default_rng(1).permutation(N)[:20]
    assert np.array_equal(parts.images_at(rows), a.images[rows])
    for split in ("train", "val", "test"):
        index_in_split = np.arange(info.split_counts[split])[::-1]
        assert np.array_equal(parts.split_images(split, index_in_split), one.split_images(split, index_in_split))
        assert np.array_equal(parts.split_labels(split), one.split_labels(split))


def test_gray_images_read_into_shards_can_end_as_one_file(tmp_path, monkeypatch):
    """Read as RGB, 48 images need shards (9,216 bytes); made one channel by the second pass they fit
    one (3,072 bytes), so the dataset is a single file, as imported without shards."""
    fmt, src = _source(tmp_path / "src", "imagefolder-gray")
    _, one_info = _import(DatasetStore(tmp_path / "one"), fmt, src)
    monkeypatch.setattr(format_mod, "SHARD_BYTES", 4000)
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", GROUP)
    store = DatasetStore(tmp_path / "home")
    path, info = _import(store, fmt, src)
    assert path == store.folder / "big.parquet" and path.is_file() and os.listdir(store.folder) == ["big.parquet"]
    assert info.shape == (1, 8, 8) and info.content_hash == one_info.content_hash


def test_an_in_memory_dataset_larger_than_a_shard_is_sharded_too(tmp_path, small_shards):
    ds = make_dataset("mem", _pixels(), np.arange(N) % 3, ["a", "b", "c"], domain="test")
    store = DatasetStore(tmp_path)
    path = store.save(ds)
    assert path == store.folder / "mem" and len(_shards(path)) == 6  # 4 + 4 images a shard, written 4 at a time
    assert read_info(path) == ds.info  # the hash of the in-memory data
    back = store.load("mem", verify=True)
    assert np.array_equal(back.images, ds.images) and np.array_equal(back.splits, ds.splits)
    written = write_dataset(ds, tmp_path / "elsewhere" / "mem.parquet")  # a folder under the name given
    assert written.is_dir() and read_dataset(written, verify=True).info == ds.info
    small = make_dataset("small", _pixels()[:9], np.arange(9) % 3, ["a", "b", "c"], domain="test")
    assert store.save(small) == store.folder / "small.parquet"  # fits a shard: one file as always


# -- 2. Parquet readers take the folder as one dataset -------------------------------------------

@pytest.fixture
def sharded(tmp_path, small_shards):
    """A store with dataset 'big' in 6 shards and the dataset in memory."""
    ds = make_dataset("big", _pixels(), np.arange(N) % 3, ["a", "b", "c"], domain="test")
    store = DatasetStore(tmp_path / "home")
    store.save(ds)
    return store, ds


def test_pyarrow_reads_the_folder_as_one_dataset(sharded):
    import pyarrow.dataset as pads

    store, ds = sharded
    folder = store.path("big")
    dataset = pads.dataset(str(folder), format="parquet")  # _dataset.json is skipped for its '_'
    assert sorted(os.path.basename(f) for f in dataset.files) == _shards(folder)
    assert dataset.count_rows() == N
    table = pq.read_table(folder)
    assert table.num_rows == N and np.array_equal(table.column("label").to_numpy(), ds.labels)
    assert isinstance(table.schema.field("image").type, pa.FixedShapeTensorType)


def test_ray_data_reads_the_folder_as_one_dataset(sharded, ray_session):
    import ray.data

    from raynas.data.loader import LoaderConfig, create_loader

    store, ds = sharded
    read = ray.data.read_parquet(str(store.path("big")))
    assert read.count() == N
    assert sorted(read.select_columns(["label"]).to_pandas()["label"]) == sorted(ds.labels.tolist())
    loader = create_loader("big", "val", LoaderConfig(backend="ray", image_size=8, channels=3, batch_size=5,
                                                      shuffle=False), store)
    labels = np.concatenate([y.numpy() for _, y in loader])
    assert sorted(labels.tolist()) == sorted(ds.split("val")[1].tolist())


def test_the_stream_loader_reads_across_shards(sharded):
    import torch

    from raynas.data.loader import LoaderConfig, create_loader

    store, _ = sharded
    cfg = dict(image_size=8, channels=3, batch_size=7, augment=False, shuffle=False)
    mem = create_loader("big", "train", LoaderConfig(backend="memory", **cfg), store)
    stream = create_loader("big", "train", LoaderConfig(backend="stream", **cfg), store)
    for (xm, ym), (xs, ys) in zip(mem, stream, strict=True):
        torch.testing.assert_close(xs, xm)
        assert torch.equal(ys, ym)


def test_predict_takes_a_sharded_dataset_as_input(sharded):
    from raynas.model.predict import resolve_input

    store, ds = sharded
    source = resolve_input("big", split="test", home=store.home.root)
    assert source.kind == "dataset" and source.parquet == store.path("big")
    assert source.rows == ds.info.split_counts["test"] and source.class_names == ("a", "b", "c")
    assert np.array_equal(source.file_rows, np.flatnonzero(ds.splits == "test"))


# -- 3. overwrite: a folder and a file replace each other, only once the new one is complete ---------

@pytest.mark.parametrize("first, second", [("big", "small"), ("small", "big"), ("big", "big")])
def test_overwrite_replaces_a_folder_with_a_file_and_back(tmp_path, monkeypatch, first, second):
    monkeypatch.setattr(format_mod, "ROW_GROUP_BYTES", GROUP)
    store = DatasetStore(tmp_path / "home")
    layouts = {"big": "x", "small": "x.parquet"}

    def save(size, seed, **options):
        monkeypatch.setattr(format_mod, "SHARD_BYTES", SHARD if size == "big" else 1 << 30)
        src = tmp_path / f"src{seed}"
        if not src.exists():
            _source(src, "imagefolder", seed=seed)
        return _import(store, "imagefolder", src, name="x", **options)

    save(first, seed=1)
    assert os.listdir(store.folder) == [layouts[first]]
    with pytest.raises(RaynasError, match="dataset 'x' already exists"):  # either layout holds the name
        save(second, seed=2)
    assert os.listdir(store.folder) == [layouts[first]]
    path, info = save(second, seed=2, overwrite=True)
    assert os.listdir(store.folder) == [layouts[second]] and path == store.folder / layouts[second]
    assert np.array_equal(store.load("x", verify=True).images, _pixels(seed=2)[row_order(len(_pixels(seed=2)))])
    assert store.info("x").content_hash == info.content_hash


# -- 4. a failed import leaves nothing behind ------------------------------------------------------

def _fail_at_the_index(monkeypatch):
    import raynas.data.writer as writer_mod

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_mod, "index_json", full)


@pytest.mark.parametrize("failure, message", [
    ("bad image", "039.png"),  # after four shards were written
    ("disk full", "No space left on device"),  # once every shard was written
])
def test_a_failed_sharded_import_leaves_nothing_behind(tmp_path, monkeypatch, small_shards, failure, message):
    fmt, src = _source(tmp_path / "src", "imagefolder", bad_row=39 if failure == "bad image" else None)
    if failure == "disk full":
        _fail_at_the_index(monkeypatch)
    store = DatasetStore(tmp_path / "home")
    with pytest.raises(RaynasError, match=message):
        _import(store, fmt, src)
    assert os.listdir(store.folder) == []  # no dataset folder, no temporary one


def test_a_failed_overwrite_keeps_the_old_dataset(tmp_path, monkeypatch, small_shards):
    store = DatasetStore(tmp_path / "home")
    _, old = _import(store, *_source(tmp_path / "a", "imagefolder"))
    _fail_at_the_index(monkeypatch)
    with pytest.raises(RaynasError, match="No space left"):
        _import(store, *_source(tmp_path / "b", "imagefolder", seed=5), overwrite=True)
    assert os.listdir(store.folder) == ["big"] and store.load("big", verify=True).info == old


KILLED = """
import os, signal, sys
import raynas.data.format as format_mod
import raynas.data.writer as writer_mod
from raynas.data import DatasetStore
from raynas.data.importers import FILE_IMPORTS
format_mod.SHARD_BYTES, format_mod.ROW_GROUP_BYTES = int(sys.argv[3]), int(sys.argv[4])
close = writer_mod._Shards._close
def close_and_die(self):
    close(self)
    if len(self.done) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
writer_mod._Shards._close = close_and_die
DatasetStore(sys.argv[1]).save_streamed(FILE_IMPORTS.get("imagefolder")(sys.argv[2], name="big"))
"""


def test_a_killed_import_leaves_only_a_temporary_folder_the_next_command_removes(tmp_path):
    import subprocess
    import sys

    _, src = _source(tmp_path / "src", "imagefolder")
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-c", KILLED, str(home), str(src), str(SHARD), str(GROUP)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr  # killed after its second shard
    store = DatasetStore(home)
    [left] = os.listdir(store.folder)
    assert left.startswith(".big.parquet.tmp-")  # hidden: no reader sees it
    assert _shards(store.folder / left / "big.parquet") == ["part-00000.parquet", "part-00001.parquet"]
    assert store.stored_names() == [] and store.entries() == [] and not store.exists("big")
    old = time.time() - STALE_TEMP_AGE_S - 5
    for path in (store.folder / left, store.folder / left / ".lock"):  # the writer's lock, released at its death
        os.utime(path, (old, old))
    store.entries()  # `data list` (and every import) removes what killed writers left
    assert os.listdir(store.folder) == []


def test_stale_temporary_folders_are_removed_and_live_ones_kept(tmp_path):
    from raynas.storage import STAGE_LOCK, staging_dir

    folder = tmp_path / "datasets"
    old = time.time() - STALE_TEMP_AGE_S - 5
    made = {}
    for tag in ("dead", "nolock", "aside", "fresh"):  # killed writers' folders, an old one set aside, a new one
        stage = folder / f".big.parquet.tmp-{tag}"
        (stage / "big.parquet").mkdir(parents=True)
        (stage / "big.parquet" / "part-00000.parquet").write_bytes(b"PAR1 half a shard")
        if tag in ("dead", "fresh"):
            (stage / STAGE_LOCK).touch()
        for path in [stage, stage / STAGE_LOCK] if tag != "fresh" else []:
            if path.exists():
                os.utime(path, (old, old))
        made[tag] = stage
    with staging_dir(folder / "big.parquet") as live:  # an import in progress holds its lock file
        (live / "big.parquet").mkdir()
        for path in (live, live / STAGE_LOCK):
            os.utime(path, (old, old))
        assert sorted(remove_stale_temps(folder)) == sorted([made["dead"], made["nolock"], made["aside"]])
        assert live.exists() and made["fresh"].exists()
    assert not live.exists() and sorted(os.listdir(folder)) == [made["fresh"].name]


# -- 5. data list and remove ------------------------------------------------------------------------

def _run(capsys, *argv, home):
    rc = main([*map(str, argv), "--home", str(home)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_data_list_and_remove_a_sharded_dataset(sharded, capsys):
    store, ds = sharded
    store.save(make_dataset("small", _pixels()[:9], np.arange(9) % 3, ["a", "b", "c"], domain="test"))
    home = store.home.root
    rc, out, err = _run(capsys, "data", "list", "--json", home=home)
    assert rc == 0, err
    listed = {d["name"]: d for d in json.loads(out)}
    assert sorted(listed) == ["big", "small"] and not any(d["damaged"] for d in listed.values())
    assert listed["big"]["images"] == N and listed["big"]["content_hash"] == ds.info.content_hash
    rc, out, err = _run(capsys, "data", "remove", "big", "--json", home=home)
    assert rc == 0 and json.loads(out)["path"] == str(store.folder / "big")
    assert os.listdir(store.folder) == ["small.parquet"]
    rc, _, err = _run(capsys, "data", "remove", "big", home=home)
    assert rc != 0 and "dataset 'big' not found" in err


def test_raynas_data_import_stores_a_large_dataset_as_shards(tmp_path, small_shards, capsys):
    _, src = _source(tmp_path / "src", "imagefolder")
    home = tmp_path / "home"
    rc, out, err = _run(capsys, "data", "import", src, "--name", "big", "--json", home=home)
    assert rc == 0, err
    answer = json.loads(out)
    assert answer["path"] == str(home / "datasets" / "big") and answer["images"] == N
    assert len(_shards(home / "datasets" / "big")) == 6
    rc, _, err = _run(capsys, "data", "import", src, "--name", "big", home=home)  # refused before reading
    assert rc != 0 and "dataset 'big' already exists" in err


def test_a_folder_written_at_the_file_name_is_the_dataset(tmp_path, small_shards):
    """A direct write_streamed to ``store.path(name)`` of a new name (as the loader benchmark makes its
    data) gives a folder ``<name>.parquet/`` when large: the store takes it as dataset ``<name>``."""
    from raynas.data.splits import stratified_split
    from raynas.data.writer import write_streamed

    store = DatasetStore(tmp_path / "home")
    labels = np.arange(N) % 3
    pixels = _pixels()
    info = write_streamed(store.path("gen"), (pixels[i:i + 4] for i in range(0, N, 4)), name="gen",
                          class_names=["a", "b", "c"], labels=labels, splits=stratified_split(labels, seed=0),
                          shape=(3, 8, 8), domain="test", provenance={})
    assert (store.folder / "gen.parquet").is_dir() and store.stored_names() == ["gen"]
    assert store.info("gen") == info and np.array_equal(store.load("gen", verify=True).images, pixels)
    assert [e.name for e in store.entries() if e.info is not None] == ["gen"]
    assert store.remove("gen") == store.folder / "gen.parquet" and os.listdir(store.folder) == []


# -- 6. damage is a clear error naming the problem and the fix ---------------------------------------

def _rewrite_shard(folder, name, change):
    table = pq.read_table(folder / name)
    pq.write_table(change(table), folder / name)


DAMAGE = {
    "index not JSON": (lambda f: (f / INDEX_FILE).write_text("{\"format\": "), "_dataset.json is not valid JSON"),
    "index missing": (lambda f: (f / INDEX_FILE).unlink(), "it has no _dataset.json"),
    "index field": (lambda f: (f / INDEX_FILE).write_text(
        json.dumps(dict(json.loads((f / INDEX_FILE).read_text()), class_names="abc"))),
        "its _dataset.json field 'class_names' is a str, not a list"),
    "shard missing": (lambda f: (f / "part-00001.parquet").unlink(), "its shard part-00001.parquet is missing"),
    "shard unlisted": (lambda f: (f / "part-00099.parquet").write_bytes((f / "part-00000.parquet").read_bytes()),
                       "it holds part-00099.parquet, which its _dataset.json does not list"),
    "shard rows": (lambda f: _rewrite_shard(f, "part-00001.parquet", lambda t: t.slice(0, 3)),
                   "its shard part-00001.parquet holds 3 rows, its _dataset.json lists 8"),
    "shard schema": (lambda f: _rewrite_shard(f, "part-00002.parquet", lambda t: t.set_column(
        1, "label", pa.array([str(v) for v in t.column("label").to_pylist()]))),
        "its label column is string, not integers (in its shard part-00002.parquet)"),
    "shard unreadable": (lambda f: (f / "part-00003.parquet").write_bytes(b"PAR1 junk"),
                         "its shard part-00003.parquet cannot be read"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_sharded_dataset_is_a_clear_error(sharded, capsys, damage):
    store, _ = sharded
    store.save(make_dataset("small", _pixels()[:9], np.arange(9) % 3, ["a", "b", "c"], domain="test"))
    harm, message = DAMAGE[damage]
    harm(store.folder / "big")
    with pytest.raises(RaynasError) as err:
        store.load("big")
    assert message in err.value.problem, err.value.problem
    assert f"dataset 'big' ({store.folder / 'big'}) is damaged" in err.value.problem
    assert "raynas data remove big" in err.value.fix and "--overwrite" in err.value.fix
    entries = {e.name: e for e in store.entries()}  # listed as damaged, the other dataset still listed
    assert entries["big"].info is None and message in entries["big"].error.problem
    assert entries["small"].info is not None
    rc, out, _ = _run(capsys, "data", "list", home=store.home.root)
    assert rc == 0 and "2 datasets (1 damaged)" in out and "damaged: big:" in out
    rc, _, _ = _run(capsys, "data", "remove", "big", home=store.home.root)  # and it can be removed
    assert rc == 0 and os.listdir(store.folder) == ["small.parquet"]


def test_a_single_shard_is_not_taken_for_a_dataset(sharded):
    store, _ = sharded
    with pytest.raises(RaynasError, match="is one shard of dataset 'big'") as err:
        read_info(store.folder / "big" / "part-00000.parquet")
    assert INDEX_FILE in err.value.fix
