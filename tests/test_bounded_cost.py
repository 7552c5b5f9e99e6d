"""Hostile input costs bounded time and memory: an alias bomb in a config file, a huge sample
grid, an import that would resize a few images to gigabytes, a storage that never answers or
cannot hold files. Each is one short clear error, exit code 1, no traceback, nothing stored
changed, and it comes before anything large is allocated or Ray starts."""

import hashlib
import json
import threading
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest

from raynas.cli import main
from raynas.config import MAX_CONFIG_BYTES, quote, read_config_file
from raynas.data import DatasetStore, make_dataset, validate
from raynas.data import imaging
from raynas.data.importers import SAVE_OVERHEAD, import_npz, npz_peak_bytes
from raynas import storage as storage_module
from raynas.errors import RaynasError
from raynas.storage import TIMEOUT_ENV, Storage


def _snapshot(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots if root.exists() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A home holding one small dataset, 'keep', and a storage folder; Ray is never reached."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    home = tmp_path / "home"
    images = np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
    DatasetStore(home).save(make_dataset("keep", images, np.arange(12) % 2, ["a", "b"], domain="t"))
    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "zoo").mkdir()
    (storage / "zoo" / "marker").write_text("stored")
    return {"home": home, "storage": storage, "tmp": tmp_path}


def _refused(capsys, places, argv, message, *, seconds=10.0, max_err=4000):
    """Run a command that must fail cleanly, fast and briefly, changing nothing; returns stderr."""
    argv = [str(a) for a in argv] + ["--home", str(places["home"])]
    before = _snapshot(places["home"], places["storage"])
    start = time.perf_counter()
    rc = main(argv)
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and "this is a bug" not in err
    assert len(err) < max_err, f"{len(err)} characters of error output"
    assert took < seconds, f"took {took:.1f} s"
    assert _snapshot(places["home"], places["storage"]) == before
    assert not (places["home"] / "runs").is_dir() or not list((places["home"] / "runs").iterdir())
    return err


# -- 1. config files ------------------------------------------------------------------------

def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: each level a list of ``width`` aliases of the level below,
    all inside the string field search.algo (9 levels of 9 expand to 9**9 = 387 million strings)."""
    lines = ["search:", "  dataset: keep", "  algo:", f"    - &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"    - &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _config(places, name: str, text: str) -> Path:
    path = places["tmp"] / name
    path.write_text(text)
    return path


CONFIG_CASES = {
    "alias bomb": ("bomb.yaml", _alias_bomb(), "alias bomb"),
    "alias of itself": ("self.yaml", "search: &s {dataset: keep, algo: *s}\n", "refers to itself"),
    "larger than 1 MiB": ("big.yaml", "search: {dataset: keep}\n" + "#" * MAX_CONFIG_BYTES + "\n", "1 MiB"),
    "nested too deeply": ("deep.json", '{"search": ' + "[" * 200_000 + "]" * 200_000 + "}",
                          "nested too deeply"),
    "section a list": ("list.yaml", "search: [1, 2]\n", "section 'search' is a list, not a mapping"),
    "race a string": ("race.yaml", "race: fast\nsearch: {dataset: keep}\n", "section 'race' is a str, not a mapping"),
    "retrain a list": ("retrain.yaml", "retrain: [1]\nsearch: {dataset: keep}\n",
                       "section 'retrain' is a list, not a mapping"),
    "search null in json": ("config.json", '{"search": null}', "section 'search' is empty (null)"),
    "race null": ("null.yaml", "race:\nsearch: {dataset: keep}\n", "section 'race' is empty (null)"),
    "ops a list of lists": ("ops.yaml", "search: {dataset: keep, ops: [[sep_conv_3x3], [skip_connect]]}\n",
                            "ops (--ops) must be a list of names"),
    "ops a mapping": ("ops2.yaml", "search: {dataset: keep, ops: {a: 1}}\n",
                      "search config.ops must be a list of names"),
    "a field null": ("epochs.yaml", "search: {dataset: keep, epochs: null}\n",
                     "epochs (--epochs) must be given a value"),
    "mixed top-level keys": ("keys.yaml", "1: a\nx: b\nsearch: {dataset: keep}\n", "unknown key(s) 1, x"),
    "a number key": ("key.yaml", "search: {dataset: keep, 1: 2}\n", "unknown search config field(s): 1"),
    "a huge string value": ("long.yaml", "search: {dataset: keep, epochs: '" + "9x" * 200_000 + "'}\n",
                            "epochs (--epochs) must be an integer"),
    "a huge key": ("longkey.json", json.dumps({"search": {"dataset": "keep", "k" * 300_000: 1}}),
                   "unknown search config field(s): kkk"),
    "publish not a bool": ("publish.yaml", "publish: [1, 2]\nsearch: {dataset: keep}\n",
                           "publish must be true or false"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_hostile_config_files_are_refused_briefly(places, capsys, case):
    name, text, message = CONFIG_CASES[case]
    path = _config(places, name, text)
    _refused(capsys, places, ["search", "--config", path, "--storage", places["storage"]], message)


def test_the_alias_bomb_is_refused_before_anything_is_built(places):
    path = _config(places, "bomb.yaml", _alias_bomb(levels=12, width=10))  # 10**12 strings expanded
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(RaynasError, match="alias bomb") as err:
            read_config_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2 and peak < 20 << 20
    assert "would repeat" in err.value.problem  # the growth it would have, counted, not built


def test_small_configs_keep_their_anchors(places):
    path = _config(places, "ok.yaml", "search: {dataset: keep, epochs: &e 3, warmup_epochs: *e, "
                                      "ops: &o [skip_connect, sep_conv_3x3]}\nrace: {race: *e}\n")
    assert read_config_file(path) == {"search": {"dataset": "keep", "epochs": 3, "warmup_epochs": 3,
                                                 "ops": ["skip_connect", "sep_conv_3x3"]}, "race": {"race": 3}}


def test_quoted_values_are_short_and_cheap():
    nested = "x"
    for _ in range(50):
        nested = [nested] * 10  # 10**50 strings if written out
    assert len(quote(nested)) <= 103 and len(quote("y" * 10**6)) <= 103 and quote(5) == "5"


# -- 2. sample grids ------------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [(["--per-class", "100000"], "--per-class must be from 1 to 32"),
                                            (["--per-class", "0"], "--per-class must be from 1 to 32"),
                                            (["--max-classes", "100000"], "--max-classes must be from 1 to 64"),
                                            (["--max-classes", "-1"], "--max-classes must be from 1 to 64")])
def test_sample_grid_sizes_out_of_range_are_refused(places, capsys, flags, message):
    out = places["tmp"] / "grid.png"
    _refused(capsys, places, ["data", "show", "keep", "--out", out, *flags], message)
    assert not out.exists()


# -- 3. imports that would grow in memory ---------------------------------------------------

def _tiny_npz(path: Path, n: int = 400, side: int = 16, channels: int = 3, dtype=np.uint8, fortran=False) -> Path:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, side, side, channels)).astype(dtype)
    np.savez(path, x=np.asfortranarray(x) if fortran else x, y=np.arange(n) % 4)
    return path


def test_an_import_that_would_resize_beyond_memory_is_refused_before_allocating(places, capsys, monkeypatch):
    # 400 images of 16x16: 1.2 MB stored, 1.2 GB at 1024x1024; Fortran-ordered arrays are read whole
    # (they cannot be read by rows), arrays in C order stream and need no such check
    src = _tiny_npz(places["tmp"] / "x.npz", dtype=np.float32, fortran=True)
    monkeypatch.setattr(validate, "memory_budget", lambda: 1 << 30)

    def no_reading(*args, **kwargs):
        raise AssertionError("the images were read before the memory they need was checked")

    monkeypatch.setattr(np.lib.format, "read_array", no_reading)
    tracemalloc.start()
    try:
        err = _refused(capsys, places, ["data", "import", src, "--name", "big", "--image-size", "1024"],
                       "resized to 1024x1024 would take", seconds=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20
    assert "--image-size" in err and "GiB" in err


def test_the_memory_check_counts_the_resized_images_and_work_buffers():
    peak = npz_peak_bytes((400, 3, 16, 16), x_bytes=400 * 3 * 256, other_bytes=3200, float_input=False,
                          image_size=1024, channels=None)
    assert peak >= (1 + SAVE_OVERHEAD) * 400 * 3 * 1024 * 1024  # the resized images and the parquet writer's buffers
    stored_size = npz_peak_bytes((400, 3, 16, 16), x_bytes=400 * 3 * 256, other_bytes=3200, float_input=False,
                                 image_size=None, channels=None)
    assert stored_size < 2 * imaging.WORK_CHUNK_BYTES


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_resizing_and_gray_conversion_in_chunks_give_the_same_images(places, monkeypatch, channels):
    """The float work of an import runs a chunk of images at a time (bounded memory); the
    images do not depend on the chunk size."""
    src = _tiny_npz(places["tmp"] / "x.npz", n=48, channels=3)
    monkeypatch.setattr(imaging, "WORK_CHUNK_BYTES", 64 * 64 * 3 * 4 * 5)  # 5 images a chunk
    chunked = import_npz(src, name="chunked", image_size=64, channels=channels)
    monkeypatch.setattr(imaging, "WORK_CHUNK_BYTES", 1 << 30)  # all at once
    whole = import_npz(src, name="whole", image_size=64, channels=channels)
    assert np.array_equal(chunked.images, whole.images) and chunked.images.shape == (48, channels or 3, 64, 64)


# -- 4. storage that never answers or cannot hold files -------------------------------------

class _SilentFS:
    """A remote filesystem that never answers (gs:// retrying a missing bucket), until released."""

    def __init__(self, release: threading.Event):
        self.release = release
        self.calls = 0

    def get_file_info(self, path):
        self.calls += 1
        self.release.wait(30)
        raise OSError("no answer")


def _fake_from_uri(monkeypatch, from_uri) -> None:
    """raynas.storage sees a pyarrow.fs whose FileSystem.from_uri is ``from_uri`` (pyarrow's own
    classes cannot be patched, and pyarrow itself stays untouched)."""
    fake = types.SimpleNamespace(**vars(pafs))
    fake.FileSystem = types.SimpleNamespace(from_uri=from_uri)
    monkeypatch.setattr(storage_module, "pafs", fake)


@pytest.fixture
def silent_uri(monkeypatch):
    """from_uri of any URI gives a filesystem that hangs; the time limit is set to 0.5 s."""
    release = threading.Event()
    fs = _SilentFS(release)
    monkeypatch.setenv(TIMEOUT_ENV, "0.5")
    _fake_from_uri(monkeypatch, lambda uri: (fs, "missing-bucket/raynas"))
    yield fs
    release.set()  # lets the stuck probe threads end


@pytest.mark.parametrize("argv", [["zoo", "list"], ["zoo", "remove", "x"], ["search", "keep", "--epochs", "1"],
                                  ["distance", "keep"]])
def test_a_storage_that_never_answers_fails_in_bounded_time(places, capsys, silent_uri, argv):
    err = _refused(capsys, places, [*argv, "--storage", "gs://missing-bucket/raynas"],
                   "storage 'gs://missing-bucket/raynas' did not answer within 0.5 s", seconds=5)
    assert "bucket" in err and "credentials" in err and "network" in err


def test_opening_a_uri_that_hangs_is_bounded_too(monkeypatch):
    release = threading.Event()
    monkeypatch.setenv(TIMEOUT_ENV, "0.3")
    _fake_from_uri(monkeypatch, lambda uri: release.wait(30))
    try:
        with pytest.raises(RaynasError, match=r"did not answer within 0.3 s \(opening it\)"):
            Storage("gs://missing-bucket/x")
    finally:
        release.set()


def test_a_remote_storage_is_probed_once(monkeypatch):
    class FastFS:
        calls = 0

        def get_file_info(self, path):
            FastFS.calls += 1
            return pafs.FileInfo(path, pafs.FileType.NotFound)

    _fake_from_uri(monkeypatch, lambda uri: (FastFS(), "bucket/raynas"))
    root = Storage("gs://bucket/raynas")
    assert not root.child("zoo").exists("a")  # the probe, then the lookup
    assert not root.exists("b") and not root.child("embeddings").exists("c")
    assert FastFS.calls == 4


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan"])
def test_a_bad_time_limit_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(TIMEOUT_ENV, value)
    with pytest.raises(RaynasError, match=f"{TIMEOUT_ENV} is"):
        Storage("gs://bucket/x")


def _afile(places):
    path = places["tmp"] / "afile"
    path.write_text("not a folder")
    return path


LOCAL_CASES = {
    "a regular file": (_afile, "is a file, not a folder"),
    "below a regular file": (lambda p: _afile(p) / "sub", "cannot be created"),
    "/proc": (lambda p: "/proc", "lies in /proc"),
    "/proc/self/x": (lambda p: "/proc/self/x", "lies in /proc"),
    "/sys/kernel/x": (lambda p: "/sys/kernel/x", "lies in /sys"),
}


@pytest.mark.parametrize("case", list(LOCAL_CASES))
@pytest.mark.parametrize("command", [["search", "keep", "--epochs", "1"], ["zoo", "list"]])
def test_local_storage_that_cannot_hold_files_is_refused_before_anything_starts(places, capsys, case, command):
    make, message = LOCAL_CASES[case]
    target = make(places)
    before = Path(target).read_bytes() if Path(str(target)).is_file() else None
    _refused(capsys, places, [*command, "--storage", target], message)
    assert before is None or Path(target).read_bytes() == before


def test_read_only_storage_is_refused(places, capsys):
    folder = places["tmp"] / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _writes_anyway(folder):
            pytest.skip("this user writes into read-only folders (root)")
        _refused(capsys, places, ["search", "keep", "--storage", folder / "storage"], "is not writable")
    finally:
        folder.chmod(0o755)


def _writes_anyway(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_json_dump_of_config_errors_stays_short(places, capsys):
    """--json changes nothing about errors: they still go to stderr, short."""
    path = _config(places, "bomb.json", json.dumps({"search": {"dataset": "keep", "algo": ["x" * 1000] * 500}}))
    _refused(capsys, places, ["search", "--config", path, "--json"], "algo (--algo) must be a string")
