"""The command line, in-process (``main(argv)``) and once through the installed console script."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from raynas.cli import main


def _tree(root, classes=("circle", "square"), n=4):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / c / f"{i}.png")
    return root


def test_data_list_json(suite_home, capsys):
    assert main(["data", "list", "--home", str(suite_home), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 8
    assert {"name", "domain", "classes", "images", "shape"} <= set(rows[0])


def test_data_show_writes_a_png(suite_home, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "show", "glyph-greek", "--out", str(out), "--home", str(suite_home)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "alpha" in capsys.readouterr().out


def test_import_list_overwrite_remove(home, tmp_path, capsys):
    src = _tree(tmp_path / "shapes")
    assert main(["data", "import", str(src), "--name", "shapes", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == 2
    rc = main(["data", "import", str(src), "--name", "shapes", "--home", str(home)])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err
    assert main(["data", "import", str(src), "--name", "shapes", "--overwrite", "--home", str(home)]) == 0
    capsys.readouterr()
    assert main(["data", "remove", "shapes", "--home", str(home)]) == 0
    assert not (home / "datasets" / "shapes.parquet").exists()


def test_import_meta_album_folder_is_detected(home, tmp_path, capsys):
    root = tmp_path / "BRD"
    (root / "images").mkdir(parents=True)
    lines = ["FILE_NAME,CATEGORY"]
    for c in ("finch", "robin"):
        for i in range(3):
            Image.fromarray(np.full((6, 6, 3), 30 * i, np.uint8)).save(root / "images" / f"{c}{i}.png")
            lines.append(f"{c}{i}.png,{c}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    assert main(["data", "import", str(root), "--name", "birds", "--image-size", "8", "--home", str(home),
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["domain"] == "meta-album" and info["shape"] == [1, 8, 8]  # gray RGB files -> 1 channel


def test_corrupt_image_leaves_nothing_behind(home, tmp_path, capsys):
    src = _tree(tmp_path / "shapes")
    (src / "square" / "3.png").write_bytes(b"broken")
    assert main(["data", "import", str(src), "--name", "shapes", "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert "3.png" in err and "fix:" in err
    assert list((home / "datasets").glob("*")) == []


def test_console_script_reports_a_bad_path(tmp_path):
    script = Path(sys.executable).with_name("raynas")
    proc = subprocess.run([str(script), "data", "import", str(tmp_path / "nowhere"), "--name", "x", "--home",
                           str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
