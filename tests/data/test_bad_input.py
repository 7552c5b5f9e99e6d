"""Hostile or broken input, end to end through ``raynas.cli.main``: every case exits non-zero
with an error that names the problem and the fix, never a traceback, and leaves what is
stored exactly as it was (issue 10)."""

import hashlib
import json
import os
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from raynas.cli import main
from raynas.data import DatasetStore, make_dataset, read_dataset
from raynas.data import imaging, importers, validate
from raynas.data.builtin import BUILTINS
from raynas.data.loader import LoaderConfig, create_loaders
from raynas.errors import RaynasError
from raynas.storage import STALE_TEMP_AGE_S

fcntl = pytest.importorskip("fcntl")


def _run(capsys, *argv, home):
    rc = main([*map(str, argv), "--home", str(home)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _snapshot(home):
    """Name -> sha256 of everything in the dataset folder (hidden files included)."""
    folder = Path(home) / "datasets"
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _tree(root, classes=("circle", "square"), n=4, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _meta_album(root, extra_rows=()):
    (root / "images").mkdir(parents=True)
    lines = ["FILE_NAME,CATEGORY,SUPER_CATEGORY"]
    for c in ("finch", "robin"):
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(root / "images" / f"{c}{i}.png")
            lines.append(f"{c}{i}.png,{c},birds")
    (root / "labels.csv").write_text("\n".join([*lines, *extra_rows]) + "\n")
    return root


def _png_header(path, width, height):
    """A tiny PNG whose header claims width x height gray pixels (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def stored(home):
    """A home holding one imported dataset, 'keep', that no bad input may touch."""
    images = np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
    DatasetStore(home).save(make_dataset("keep", images, np.arange(12) % 2, ["a", "b"], domain="t"))
    return home


def _refused(capsys, home, argv, message):
    """Run a command that must fail cleanly and change nothing stored; returns stderr."""
    before = _snapshot(home)
    rc, out, err = _run(capsys, *argv, home=home)
    assert rc == 1, (out, err)
    assert err.startswith("error: ") and message in err, err
    assert "fix:" in err and "Traceback" not in err
    assert _snapshot(home) == before
    return err


# -- 1. security: nothing is read from outside the folder being imported ---------------------

def _outside_image(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(secret)
    return secret


def _ma_dotdot(tmp_path):
    _outside_image(tmp_path)
    return _meta_album(tmp_path / "src", ["../../elsewhere/secret.png,finch,birds"])


def _ma_absolute(tmp_path):
    return _meta_album(tmp_path / "src", [f"{_outside_image(tmp_path)},finch,birds"])


def _ma_symlink(tmp_path):
    root = _meta_album(tmp_path / "src", ["linked.png,finch,birds"])
    (root / "images" / "linked.png").symlink_to(_outside_image(tmp_path))
    return root


def _if_file_link(tmp_path):
    root = _tree(tmp_path / "src")
    (root / "circle" / "linked.png").symlink_to(_outside_image(tmp_path))
    return root


def _if_class_link(tmp_path):
    root = _tree(tmp_path / "src")
    outside = _tree(tmp_path / "elsewhere_tree", classes=("triangle",))
    (root / "triangle").symlink_to(outside / "triangle", target_is_directory=True)
    return root


def _if_nested_dir_link(tmp_path):
    root = _tree(tmp_path / "src")
    (root / "square" / "more").symlink_to(_outside_image(tmp_path).parent, target_is_directory=True)
    return root


@pytest.mark.parametrize("build, message", [
    (_ma_dotdot, "climbs out with '..'"),
    (_ma_absolute, "is an absolute path"),
    (_ma_symlink, "outside the folder being imported"),
    (_if_file_link, "outside the folder being imported"),
    (_if_class_link, "outside the folder being imported"),
    (_if_nested_dir_link, "outside the folder being imported"),
])
def test_paths_leading_outside_the_import_are_refused(stored, tmp_path, capsys, build, message):
    err = _refused(capsys, stored, ["data", "import", build(tmp_path), "--name", "stolen"], message)
    assert "raynas never imports" in err


def test_links_that_stay_inside_the_folder_are_fine(home, tmp_path, capsys):
    root = _tree(tmp_path / "src")
    (root / "circle" / "again.png").symlink_to(root / "square" / "0.png")
    rc, out, err = _run(capsys, "data", "import", root, "--name", "linked", "--json", home=home)
    assert rc == 0, err
    assert json.loads(out)["images"] == 9


# -- 2. two imports racing for one name: exactly one wins -------------------------------------

def _json_objects(text: str) -> list:
    decoder, objects, at, text = json.JSONDecoder(), [], 0, text.strip()
    while at < len(text):
        obj, at = decoder.raw_decode(text, at)
        objects.append(obj)
        while at < len(text) and text[at].isspace():
            at += 1
    return objects


def test_concurrent_imports_of_one_name_one_wins_the_other_is_told(home, tmp_path, capsys, monkeypatch):
    sources = [_tree(tmp_path / "a", seed=1), _tree(tmp_path / "b", seed=2)]
    barrier = threading.Barrier(2, timeout=60)
    save = DatasetStore.save

    def racing_save(self, ds, overwrite=False):
        barrier.wait()  # both imports have passed every check; both now save at once
        return save(self, ds, overwrite)

    monkeypatch.setattr(DatasetStore, "save", racing_save)
    codes = []
    threads = [threading.Thread(target=lambda s=s: codes.append(
        main(["data", "import", str(s), "--name", "shapes", "--json", "--home", str(home)]))) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    out = capsys.readouterr()
    assert sorted(codes) == [0, 1]
    assert out.err.count("dataset 'shapes' already exists") == 1 and "--overwrite" in out.err
    answers = _json_objects(out.out)  # one object per command: the winner's answer, the loser's error
    [winner] = [a for a in answers if "content_hash" in a]
    [loser] = [a for a in answers if "error" in a]
    assert "already exists" in loser["error"] and loser["exit_code"] == 1
    assert read_dataset(home / "datasets" / "shapes.parquet", verify=True).info.content_hash == winner["content_hash"]
    assert sorted(os.listdir(home / "datasets")) == ["shapes.parquet"]  # no temporary file left


# -- 3. resource exhaustion: bounded before anything large is allocated -----------------------

def test_sparse_integer_labels_become_few_classes_not_a_billion(home, tmp_path, capsys):
    x = np.random.default_rng(0).integers(0, 256, (12, 8, 8), dtype=np.uint8)
    y = np.array([0, 10**9] * 6)
    np.savez_compressed(tmp_path / "sparse.npz", x=x, y=y)
    rc, out, err = _run(capsys, "data", "import", tmp_path / "sparse.npz", "--name", "sparse", "--json", home=home)
    assert rc == 0, err
    info = json.loads(out)
    assert info["class_names"] == ["0", "1000000000"] and info["classes"] == 2
    stored = read_dataset(home / "datasets" / "sparse.parquet", verify=True)
    np.testing.assert_array_equal(stored.labels, [0, 1] * 6)


def _bomb_header(tmp_path):
    root = _tree(tmp_path / "src")
    _png_header(root / "circle" / "bomb.png", 50000, 50000)
    return root


def _hundred_megapixel_header(tmp_path):
    root = _tree(tmp_path / "src")
    _png_header(root / "circle" / "huge.png", 10000, 10000)  # PIL only warns at this size
    return root


def _big_images(tmp_path):
    np.savez_compressed(tmp_path / "big.npz", x=np.zeros((6, 1100, 1100), np.uint8), y=np.arange(6) % 2)
    return tmp_path / "big.npz"


@pytest.mark.parametrize("build, extra, message", [
    (_bomb_header, [], "more than the 64 megapixels (8192x8192) raynas decodes"),
    (_hundred_megapixel_header, [], "is 10000x10000 pixels, more than the 64 megapixels"),
    (_big_images, [], "larger than the maximum 1024x1024"),
    (lambda p: _tree(p / "src"), ["--image-size", "20000"], "--image-size must be at least 4 and at most 1024"),
    (lambda p: _tree(p / "src"), ["--image-size", "100000"], "--image-size must be at least 4 and at most 1024"),
    (lambda p: _tree(p / "src"), ["--image-size", "0"], "--image-size must be at least 4 and at most 1024"),
])
def test_oversized_input_is_refused(stored, tmp_path, capsys, build, extra, message):
    _refused(capsys, stored, ["data", "import", build(tmp_path), "--name", "big", *extra], message)


def test_an_image_over_the_pixel_bound_is_never_decoded(stored, tmp_path, capsys, monkeypatch):
    root = _tree(tmp_path / "src")
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 7 * 7)  # the 8x8 test images are "too large"

    def no_decoding(self):
        raise AssertionError("a too-large image was decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    _refused(capsys, stored, ["data", "import", root, "--name", "big"], "8x8 pixels, more than")


def test_arrays_beyond_memory_are_refused_before_they_are_read_and_folders_stream(stored, tmp_path, capsys, monkeypatch):
    # Fortran-ordered images cannot be read by rows, so they are read whole: refused by the budget
    np.savez_compressed(tmp_path / "a.npz", x=np.asfortranarray(np.zeros((40, 3, 64, 64), np.float32)),
                        y=np.arange(40) % 2)
    monkeypatch.setattr(validate, "memory_budget", lambda: 100_000)

    def no_reading(*a, **k):
        raise AssertionError("the array was read before its size was checked")

    monkeypatch.setattr(np.lib.format, "read_array", no_reading)
    _refused(capsys, stored, ["data", "import", tmp_path / "a.npz", "--name", "big"], "of memory, more than")
    monkeypatch.undo()
    # arrays in C order (uint8 or float) and image folders are streamed in row groups: the same
    # budget does not stop them
    monkeypatch.setattr(validate, "memory_budget", lambda: 100_000)
    np.savez_compressed(tmp_path / "b.npz", x=np.zeros((40, 3, 64, 64), np.uint8), y=np.arange(40) % 2)
    assert main(["data", "import", str(tmp_path / "b.npz"), "--name", "big8", "--home", str(stored)]) == 0
    np.savez_compressed(tmp_path / "c.npz", x=np.zeros((40, 3, 64, 64), np.float32), y=np.arange(40) % 2)
    assert main(["data", "import", str(tmp_path / "c.npz"), "--name", "big32", "--home", str(stored)]) == 0
    assert main(["data", "import", str(_tree(tmp_path / "src", n=400)), "--name", "big", "--image-size", "64",
                 "--home", str(stored)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("value", ["100000", "2", "0"])
def test_channels_other_than_one_or_three_are_refused_by_the_parser(stored, tmp_path, capsys, value):
    before = _snapshot(stored)
    with pytest.raises(SystemExit) as exit_:
        main(["data", "import", str(_tree(tmp_path / "src")), "--name", "x", "--channels", value,
              "--home", str(stored)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--channels: invalid choice" in err and "choose from 1, 3" in err
    assert _snapshot(stored) == before


# -- 4. clear errors instead of tracebacks ----------------------------------------------------

def _npz(tmp_path, **arrays):
    np.savez(tmp_path / "in.npz", **arrays)
    return tmp_path / "in.npz"


def _npz_0d_images(tmp_path):
    return _npz(tmp_path, x=np.array(5), y=np.array([0, 1]))


def _npz_0d_labels(tmp_path):
    return _npz(tmp_path, x=np.zeros((6, 8, 8), np.uint8), y=np.array(1))


def _npz_empty_file(tmp_path):
    (tmp_path / "in.npz").write_bytes(b"")
    return tmp_path / "in.npz"


def _npy_named_npz(tmp_path):
    with open(tmp_path / "in.npz", "wb") as fh:
        np.save(fh, np.zeros((6, 8, 8), np.uint8))
    return tmp_path / "in.npz"


def _npz_truncated(tmp_path):
    path = _npz(tmp_path, x=np.zeros((12, 8, 8), np.uint8), y=np.arange(12) % 2)
    path.write_bytes(path.read_bytes()[:300])
    return path


def _ma_short_row(tmp_path):
    return _meta_album(tmp_path / "src", ["finch0.png"])


def _ma_bad_utf8(tmp_path):
    root = _meta_album(tmp_path / "src")
    (root / "labels.csv").write_bytes((root / "labels.csv").read_bytes() + b"caf\xe9.png,finch,birds\n")
    return root


def _ma_empty_category(tmp_path):
    return _meta_album(tmp_path / "src", ["finch0.png,,birds"])


@pytest.mark.parametrize("build, extra, message", [
    (lambda p: _tree(p / "src"), ["--seed", "-1"], "--seed must be a whole number 0 or more, got -1"),
    (_npz_0d_images, [], "images have shape (), expected (N, H, W)"),
    (_npz_0d_labels, [], "labels have shape (), expected a flat array"),
    (_npz_empty_file, [], "the file is empty (0 bytes)"),
    (_npy_named_npz, [], "holds one .npy array (numpy.save), not named arrays"),
    (_npz_truncated, [], "cannot read"),
    (lambda p: _npz(p, y=np.arange(6) % 2), [], "lacks the array(s) ['x']"),
    (lambda p: _npz(p, x=np.zeros((6, 8, 8), np.uint8)), [], "lacks the array(s) ['y']"),
    (_ma_short_row, [], "line 8 has no CATEGORY value"),
    (_ma_empty_category, [], "line 8 has no CATEGORY value"),
    (_ma_bad_utf8, [], "labels.csv is not UTF-8 text (line 8: invalid continuation byte)"),
])
def test_bad_import_input_gets_a_clear_error(stored, tmp_path, capsys, build, extra, message):
    _refused(capsys, stored, ["data", "import", build(tmp_path), "--name", "bad", *extra], message)


def test_a_home_that_is_a_file_is_named(tmp_path, capsys):
    home = tmp_path / "home"
    home.write_text("not a folder")
    for argv in (["data", "import", _tree(tmp_path / "src"), "--name", "x"], ["data", "list"],
                 ["data", "show", "x"], ["data", "remove", "x"]):
        rc, _, err = _run(capsys, *argv, home=home)
        assert rc == 1 and f"the raynas home {home} is a file, not a folder" in err and "fix:" in err
        assert home.read_text() == "not a folder"


def test_a_datasets_path_that_is_a_file_is_named(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "datasets").write_text("x")
    rc, _, err = _run(capsys, "data", "import", _tree(tmp_path / "src"), "--name", "x", home=home)
    assert rc == 1 and "datasets (or a folder above it) is a file, not a folder" in err and "Traceback" not in err


def _read_only_is_enforced(tmp_path):
    """False for root (with its usual capabilities), which writes into read-only folders anyway."""
    probe = tmp_path / "probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        (probe / "x").touch()
        return False
    except PermissionError:
        return True
    finally:
        probe.chmod(0o755)


def test_a_read_only_dataset_folder_is_refused_before_reading(stored, tmp_path, capsys, monkeypatch):
    if not _read_only_is_enforced(tmp_path):
        pytest.skip("this user writes into read-only folders (root)")
    folder = stored / "datasets"
    folder.chmod(0o555)
    monkeypatch.setattr(importers, "read_rgb", lambda p: pytest.fail("images were read"))
    try:
        _refused(capsys, stored, ["data", "import", _tree(tmp_path / "src"), "--name", "new"], "is read-only")
    finally:
        folder.chmod(0o755)


def test_a_failing_write_is_a_clear_error_and_keeps_what_was_stored(stored, tmp_path, capsys, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pq, "write_table", denied)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", denied)  # the streamed import's writer
    _refused(capsys, stored, ["data", "import", _tree(tmp_path / "src"), "--name", "keep", "--overwrite"],
             "cannot write dataset 'keep'")


# Damaged dataset files: each is refused when read, with the dataset's name and the fix.

def _rewrite(path, table=None, **meta):
    """Rewrite a dataset file with a changed table and/or changed metadata values."""
    table = pq.read_table(path) if table is None else table
    metadata = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    metadata.update(meta)
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _set_column(path, name, array):
    table = pq.read_table(path)
    _rewrite(path, table.set_column(table.schema.get_field_index(name), name, array))


def _split_without_val(path, honest):
    table = pq.read_table(path)
    split = ["train" if s == "val" else s for s in table.column("split").to_pylist()]
    _set_column(path, "split", pa.array(split))
    if honest:  # the metadata admits it: no val images at all
        counts = {s: split.count(s) for s in ("train", "val", "test")}
        _rewrite(path, split_counts=json.dumps(counts))


DAMAGE = {
    "bad JSON metadata": (lambda p: _rewrite(p, class_names="[not json"), "'class_names' is not valid JSON"),
    "metadata of the wrong type": (lambda p: _rewrite(p, shape='"8x8"'), "'shape' is a str, not a list"),
    "another image shape": (lambda p: _rewrite(p, shape="[1, 16, 16]"),
                            "metadata says images are [1, 16, 16] but the image column holds [1, 8, 8]"),
    "more classes than content": (lambda p: _rewrite(p, class_names='["a", "b", "c"]'), "class 'c' has no images"),
    "labels beyond the classes": (lambda p: _set_column(p, "label", pa.array([0, 1, 2] * 4, pa.int32())),
                                  "label 2 is out of range for its 2 classes"),
    "no label column": (lambda p: _rewrite(p, pq.read_table(p).drop_columns(["label"])), "has no 'label' column"),
    "image column not a tensor": (lambda p: _set_column(p, "image", pa.array([b"x"] * 12)),
                                  "not a fixed-shape uint8 tensor column"),
    "no val rows (metadata agrees)": (lambda p: _split_without_val(p, honest=True), "it has no val images"),
    "no val rows (metadata claims some)": (lambda p: _split_without_val(p, honest=False), "it has no val rows"),
    "unknown split name": (lambda p: _set_column(p, "split", pa.array(["holdout"] + ["train"] * 11)),
                           "its split column holds 'holdout'"),
    "rows missing": (lambda p: _rewrite(p, pq.read_table(p).slice(0, 11)), "counts 12 images but the file holds 11"),
    "empty labels": (lambda p: _set_column(p, "label", pa.array([None] + [0, 1] * 5 + [1], pa.int32())),
                     "label column has 1 empty values"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_dataset_is_refused_by_name_with_the_fix(stored, capsys, damage):
    DAMAGE[damage][0](stored / "datasets" / "keep.parquet")
    err = _refused(capsys, stored, ["data", "show", "keep"], DAMAGE[damage][1])
    assert "dataset 'keep'" in err and "is damaged" in err
    assert "raynas data import SOURCE --name keep --overwrite" in err and "raynas data remove keep" in err


@pytest.mark.parametrize("backend", ["memory", "stream", "ray"])
@pytest.mark.parametrize("damage", ["labels beyond the classes", "no val rows (metadata claims some)"])
def test_loaders_refuse_damaged_content_before_training(stored, damage, backend):
    DAMAGE[damage][0](stored / "datasets" / "keep.parquet")
    with pytest.raises(RaynasError, match="dataset 'keep'.*is damaged") as err:
        create_loaders("keep", LoaderConfig(image_size=8, backend=backend), ("train", "val"), DatasetStore(stored))
    assert DAMAGE[damage][1] in str(err.value)


# -- 5. one damaged file does not break `data list` -------------------------------------------

@pytest.fixture
def damaged_home(suite_home, stored, tmp_path):
    """The built suite, 'keep', and three files that cannot be used."""
    for p in (suite_home / "datasets").glob("*.parquet"):
        (stored / "datasets" / p.name).write_bytes(p.read_bytes())
    (stored / "datasets" / "junk.parquet").write_bytes(b"not parquet")
    DAMAGE["bad JSON metadata"][0](_copy(stored, "keep", "badmeta"))
    _copy(stored, "keep", "Bad Name")
    return stored


def _copy(home, name, new):
    target = home / "datasets" / f"{new}.parquet"
    target.write_bytes((home / "datasets" / f"{name}.parquet").read_bytes())
    return target


def test_data_list_shows_damaged_files_and_all_the_others(damaged_home, capsys):
    before = _snapshot(damaged_home)
    rc, out, err = _run(capsys, "data", "list", "--json", home=damaged_home)
    assert rc == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows)[:len(BUILTINS)] == list(BUILTINS)
    assert all(not rows[n]["damaged"] and rows[n]["images"] > 0 for n in [*BUILTINS, "keep"])
    assert rows["junk"]["damaged"] and "cannot read dataset file" in rows["junk"]["error"] and rows["junk"]["fix"]
    assert rows["badmeta"]["damaged"] and "'class_names' is not valid JSON" in rows["badmeta"]["error"]
    assert rows["Bad Name"]["damaged"] and "is not named like a dataset" in rows["Bad Name"]["error"]
    rc, out, _ = _run(capsys, "data", "list", home=damaged_home)
    assert rc == 0 and f"{len(BUILTINS) + 4} datasets (3 damaged)" in out
    assert "damaged: junk: cannot read dataset file" in out and "DAMAGED" in out and "keep" in out
    assert _snapshot(damaged_home) == before
    rc, _, _ = _run(capsys, "data", "remove", "junk", home=damaged_home)  # and it can be removed
    assert rc == 0 and not (damaged_home / "datasets" / "junk.parquet").exists()


# -- 6. a killed import leaves no temporary file behind ---------------------------------------

def _temp(home, tag, age_s):
    path = home / "datasets" / f".shapes.parquet.tmp-{tag}"
    path.write_bytes(b"PAR1 half a file")
    os.utime(path, (time.time() - age_s, time.time() - age_s))
    return path


@pytest.mark.parametrize("command", ["list", "import"])
def test_the_next_run_removes_what_a_killed_import_left(stored, tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr(BUILTINS, "_items", {})  # the suite is not the subject here
    dead = _temp(stored, "dead0000", age_s=STALE_TEMP_AGE_S + 5)
    fresh = _temp(stored, "fresh000", age_s=0)  # may be a writer between creating and locking its file
    live = _temp(stored, "live0000", age_s=STALE_TEMP_AGE_S + 5)  # an import in progress holds its lock
    argv = {"list": ["data", "list"],
            "import": ["data", "import", _tree(tmp_path / "src"), "--name", "shapes"]}[command]
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        rc, _, err = _run(capsys, *argv, home=stored)
        assert rc == 0, err
        assert not dead.exists() and fresh.exists() and live.exists()
    assert (stored / "datasets" / "keep.parquet").is_file()
