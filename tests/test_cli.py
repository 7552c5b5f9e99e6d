"""The command line, in-process (``main(argv)``) and once through the installed console script."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from raynas.cli import main
from raynas.data import read_dataset
from raynas.data.builtin import BUILTINS

SUITE = list(BUILTINS)  # the built-in suite, in its order (tests/data/test_store.py checks what it holds)


@pytest.fixture
def suite_copy(suite_home, tmp_path):
    """A home of the test's own holding a copy of the built suite (so `data list` builds nothing)."""
    home = tmp_path / "home_with_suite"
    shutil.copytree(suite_home / "datasets", home / "datasets")
    return home


def _tree(root, classes=("circle", "square"), n=4):
    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i + ci, np.uint8)).save(root / c / f"{i}.png")
    return root


def _meta_album(root):
    (root / "images").mkdir(parents=True)
    lines = ["FILE_NAME,CATEGORY,SUPER_CATEGORY"]
    for c in ("finch", "robin"):
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 30 * i, np.uint8)).save(root / "images" / f"{c}{i}.png")
            lines.append(f"{c}{i}.png,{c},birds")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _run(capsys, *argv, home):
    rc = main([*map(str, argv), "--home", str(home)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _leftovers(home):
    return sorted(os.listdir(home / "datasets")) if (home / "datasets").exists() else []


def test_data_list_json(suite_copy, capsys):
    rc, out, _ = _run(capsys, "data", "list", "--json", home=suite_copy)
    assert rc == 0
    rows = json.loads(out)
    assert isinstance(rows, list) and [r["name"] for r in rows] == SUITE
    for row in rows:
        assert {"name", "domain", "classes", "images", "shape", "builtin"} <= set(row)
        assert isinstance(row["classes"], int) and isinstance(row["images"], int) and len(row["shape"]) == 3
        assert row["builtin"] is True
        assert row["suite"] is (row["name"] not in ("mnist5k-rot", "mnist5k-inv"))
    digits = rows[0]
    assert digits["domain"] == "handwriting" and digits["classes"] == 10 and digits["images"] == 1797
    assert digits["shape"] == [1, 8, 8]


def test_data_list_table(suite_copy, capsys):
    rc, out, _ = _run(capsys, "data", "list", home=suite_copy)
    assert rc == 0 and f"{len(SUITE)} datasets" in out and all(name in out for name in SUITE)
    assert "not in the benchmark suite (transforms of another set): mnist5k-rot, mnist5k-inv" in out


def test_data_show_writes_a_png(suite_copy, tmp_path, capsys):
    out_png = tmp_path / "x.png"
    rc, out, _ = _run(capsys, "data", "show", "glyph-greek", "--out", out_png, home=suite_copy)
    assert rc == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out_png) as img:
        assert img.width > 100 and img.height > 100
    assert "alpha" in out and str(out_png) in out
    assert "built-in: Greek letters alpha-omega in 16 typefaces" in out
    rc, out, _ = _run(capsys, "data", "show", "digits", "--per-class", "2", "--max-classes", "3", "--json",
                      home=suite_copy)
    shown = json.loads(out)
    assert rc == 0 and shown["name"] == "digits" and shown["builtin"] is True
    assert shown["description"] == "scikit-learn handwritten digits, 8x8"
    assert Path(shown["grid"]) == suite_copy / "plots" / "digits.png" and Path(shown["grid"]).is_file()


@pytest.mark.parametrize("name, says", [
    ("math-arrows", "unlike its domain's other sets: arrows: most classes are rotations of one another"),
    ("mnist5k-rot", "not in the benchmark suite (a transform of another set)")])
def test_data_show_says_how_a_builtin_differs(suite_copy, tmp_path, capsys, name, says):
    rc, out, _ = _run(capsys, "data", "show", name, "--per-class", "1", "--max-classes", "2", "--out",
                      tmp_path / "x.png", home=suite_copy)
    assert rc == 0 and says in out, out


def test_data_show_unknown_lists_the_choices(suite_copy, capsys):
    rc, _, err = _run(capsys, "data", "show", "nope", home=suite_copy)
    assert rc == 1 and "dataset 'nope' not found" in err and "digits" in err


def test_import_list_overwrite_remove(suite_copy, tmp_path, capsys):
    src = _tree(tmp_path / "shapes")
    rc, out, _ = _run(capsys, "data", "import", src, "--name", "shapes", "--json", home=suite_copy)
    assert rc == 0
    imported = json.loads(out)
    assert imported["classes"] == 2 and imported["images"] == 8 and imported["shape"] == [1, 8, 8]
    assert imported["domain"] == "custom" and Path(imported["path"]) == suite_copy / "datasets" / "shapes.parquet"

    rc, out, _ = _run(capsys, "data", "list", "--json", home=suite_copy)
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows) == SUITE + ["shapes"] and rows["shapes"]["builtin"] is False

    rc, _, err = _run(capsys, "data", "import", src, "--name", "shapes", home=suite_copy)
    assert rc == 1 and "already exists" in err and "--overwrite" in err and "Traceback" not in err

    rc, out, _ = _run(capsys, "data", "import", src, "--name", "shapes", "--overwrite", "--channels", "3",
                      "--domain", "toys", home=suite_copy)
    assert rc == 0 and "stored:" in out
    info = read_dataset(suite_copy / "datasets" / "shapes.parquet", verify=True).info
    assert info.shape == (3, 8, 8) and info.domain == "toys"

    rc, out, _ = _run(capsys, "data", "remove", "shapes", home=suite_copy)
    assert rc == 0 and "removed shapes" in out
    assert "shapes.parquet" not in _leftovers(suite_copy)
    rc, out, _ = _run(capsys, "data", "list", "--json", home=suite_copy)
    assert [r["name"] for r in json.loads(out)] == SUITE
    rc, _, err = _run(capsys, "data", "remove", "shapes", home=suite_copy)
    assert rc == 1 and "not found" in err


def test_import_meta_album_folder_is_detected(suite_copy, tmp_path, capsys):
    root = _meta_album(tmp_path / "BRD")
    rc, out, _ = _run(capsys, "data", "import", root, "--name", "birds", "--image-size", "8", "--json",
                      home=suite_copy)
    assert rc == 0
    info = json.loads(out)
    assert info["domain"] == "meta-album" and info["shape"] == [1, 8, 8]  # gray RGB files -> 1 channel
    assert info["class_names"] == ["finch", "robin"] and info["provenance"]["format"] == "meta-album"
    rc, out, _ = _run(capsys, "data", "list", "--json", home=suite_copy)
    assert "birds" in [r["name"] for r in json.loads(out)]


def test_import_npz_with_split_and_seed(home, tmp_path, capsys):
    x = np.random.default_rng(0).random((40, 8, 8))
    np.savez(tmp_path / "arrays.npz", x=x, y=np.arange(40) % 2)
    rc, out, _ = _run(capsys, "data", "import", tmp_path / "arrays.npz", "--name", "arr", "--split", "0.6,0.2,0.2",
                      "--seed", "3", "--json", home=home)
    assert rc == 0
    info = json.loads(out)
    assert info["split_counts"] == {"train": 24, "val": 8, "test": 8} and info["provenance"]["split_seed"] == 3


@pytest.mark.parametrize("extra, message", [
    (["--name", "shapes", "--split", "half,quarter"], "is not a list of numbers"),
    (["--name", "shapes", "--split", "0.5,0.5"], "split fractions"),
    (["--name", "shapes", "--image-size", "2"], "--image-size must be at least 4"),
    (["--name", "Bad Name"], "not valid"),
])
def test_import_bad_options(home, tmp_path, capsys, extra, message):
    rc, _, err = _run(capsys, "data", "import", _tree(tmp_path / "shapes"), *extra, home=home)
    assert rc == 1 and err.startswith("error: ") and message in err
    assert _leftovers(home) == []


def test_import_over_a_builtin_name_is_refused(home, tmp_path, capsys):
    rc, _, err = _run(capsys, "data", "import", _tree(tmp_path / "shapes"), "--name", "digits", home=home)
    assert rc == 1 and "built-in" in err
    assert _leftovers(home) == []


def test_corrupt_image_leaves_nothing_behind(home, tmp_path, capsys):
    src = _tree(tmp_path / "shapes")
    (src / "square" / "3.png").write_bytes(b"broken")
    rc, _, err = _run(capsys, "data", "import", src, "--name", "shapes", home=home)
    assert rc == 1
    assert "3.png" in err and "fix:" in err and "Traceback" not in err
    assert _leftovers(home) == []  # no dataset file and no temporary file


def test_failed_overwrite_keeps_the_old_dataset(home, tmp_path, capsys):
    src = _tree(tmp_path / "shapes")
    assert _run(capsys, "data", "import", src, "--name", "shapes", home=home)[0] == 0
    before = read_dataset(home / "datasets" / "shapes.parquet").info.content_hash
    (src / "circle" / "0.png").write_bytes(b"broken")
    rc, _, err = _run(capsys, "data", "import", src, "--name", "shapes", "--overwrite", home=home)
    assert rc == 1 and "0.png" in err
    assert _leftovers(home) == ["shapes.parquet"]
    assert read_dataset(home / "datasets" / "shapes.parquet", verify=True).info.content_hash == before


def test_console_script_reports_a_bad_path(tmp_path):
    script = Path(sys.executable).with_name("raynas")
    missing = tmp_path / "nowhere"
    proc = subprocess.run([str(script), "data", "import", str(missing), "--name", "x", "--home", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"error: {missing} does not exist" in proc.stderr and "fix: check the path" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_reader_that_stops_reading_ends_the_command_quietly(suite_home, tmp_path):
    """`raynas data list --json | head -1`: the pipe closes early; no traceback, exit code 141."""
    import subprocess
    import sys
    from pathlib import Path

    proc = subprocess.Popen([str(Path(sys.executable).parent / "raynas"), "data", "list", "--json", "--home",
                             str(suite_home)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the answer is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err
