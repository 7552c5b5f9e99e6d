"""``raynas predict``: Ray Data batch inference gives plain-torch predictions, skips bad files, never
leaves a partial output."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from raynas.cli import main


def plain_torch(run, images: np.ndarray) -> np.ndarray:
    """The reference: ``network(preprocess.batch(x)).argmax(1)`` in the test process."""
    from raynas.model.load import load_card_and_network

    network, card = load_card_and_network(run)
    with torch.inference_mode():
        return network(card.preprocessing().batch(torch.from_numpy(images))).argmax(1).numpy()


def stored_as_read(run, paths) -> np.ndarray:
    """What the model's preprocessing makes of image files (uint8 at the stored size)."""
    from raynas.model.load import load_card_and_network

    _, card = load_card_and_network(run)
    pre = card.preprocessing()
    return np.stack([pre.stored_uint8(p) for p in paths])


def dataset_images(suite_home, n: int) -> tuple[np.ndarray, np.ndarray]:
    from raynas.data import DatasetStore

    images, labels = DatasetStore(suite_home).load("glyph-digits").split("test")
    return images[:n], labels[:n]


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[0]).save(buffer, format="PNG")
    return buffer.getvalue()


def run_json(capsys, *argv) -> dict:
    assert main(["predict", *map(str, argv), "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # stdout is one JSON object


def test_folder_matches_plain_torch_and_skips_bad_files(ray_session, trained_run, suite_home, tmp_path, capsys):
    images, _ = dataset_images(suite_home, 12)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    good = [folder / ("sub" if i % 3 == 0 else "") / f"img{i:02d}.png" for i in range(len(images))]
    for path, image in zip(good, images):
        path.write_bytes(png(image))
    (folder / "broken.png").write_bytes(png(images[0])[:40])  # truncated
    (folder / "sub" / "fake.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("ignored: not an image by its name")
    out = tmp_path / "preds.parquet"

    answer = run_json(capsys, trained_run, folder, "--out", out, "--home", suite_home,
                      "--batch-size", 5)

    assert answer["predicted"] == 12 and answer["skipped"] == 2
    reasons = {s["path"]: s["reason"] for s in answer["skipped_files"]}
    assert set(reasons) == {str(folder / "broken.png"), str(folder / "sub" / "fake.jpg")}
    assert all("cannot read" in r for r in reasons.values())
    assert answer["input"]["ignored"] == 1 and answer["input"]["ignored_files"] == [str(folder / "notes.txt")]
    table = pq.read_table(out)
    assert table.column_names == ["path", "class_name", "class_index", "topk_class_names", "topk_probabilities"]
    by_path = dict(zip(table.column("path").to_pylist(), table.column("class_index").to_pylist()))
    decoded = stored_as_read(trained_run, good)
    assert np.array_equal(decoded, images)  # PNG keeps the dataset's pixels: the same images both ways
    expected = plain_torch(trained_run, decoded)
    assert by_path == {str(p): int(e) for p, e in zip(good, expected)}
    assert table.column("path").to_pylist() == sorted(by_path)  # input order kept: the walk's sorted order
    names, probs = table.column("topk_class_names").to_pylist(), table.column("topk_probabilities").to_pylist()
    assert all(len(n) == 5 and len(p) == 5 for n, p in zip(names, probs))
    assert [n[0] for n in names] == table.column("class_name").to_pylist()
    assert all(p == sorted(p, reverse=True) and sum(p) <= 1.0 + 1e-5 for p in probs)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_dataset_split_reports_accuracy_and_confusion(ray_session, trained_run, suite_home, tmp_path, capsys):
    from raynas.data import DatasetStore

    ds = DatasetStore(suite_home).load("glyph-digits")
    test_rows = np.flatnonzero(ds.splits == "test")
    expected = plain_torch(trained_run, ds.images[test_rows])
    out = tmp_path / "preds.parquet"

    answer = run_json(capsys, trained_run, "glyph-digits", "--split", "test", "--out", out, "--home", suite_home,
                      "--top-k", 20)

    n = len(test_rows)
    assert answer["predicted"] == n and answer["skipped"] == 0 and answer["top_k"] == 10  # capped at the classes
    assert answer["accuracy"] == pytest.approx(float(np.mean(expected == ds.labels[test_rows])))
    matrix = np.array(answer["confusion"]["matrix"])
    assert matrix.sum() == n and np.trace(matrix) == int(np.sum(expected == ds.labels[test_rows]))
    table = pq.read_table(out)
    assert table.column("row").to_pylist() == test_rows.tolist()
    assert table.column("class_index").to_pylist() == expected.tolist()
    assert table.column("label").to_pylist() == ds.labels[test_rows].tolist()
    assert table.column("label_name").to_pylist() == [ds.info.class_names[i] for i in ds.labels[test_rows]]
    lines = (tmp_path / "preds.confusion.csv").read_text().splitlines()
    assert len(lines) == 11 and np.array([line.split(",")[1:] for line in lines[1:]], int).sum() == n


@pytest.mark.slow  # ~10-20 s; the default run keeps the same path's cheaper tests
def test_zoo_entry_with_the_head_of_a_dataset(ray_session, suite_home, tmp_path, capsys):
    from raynas.data import DatasetStore
    from raynas.model.load import load_card_and_network
    from tests.model.test_model import _publish_supernet

    storage = str(tmp_path / "shared")
    _publish_supernet(storage, DatasetStore(suite_home), "mix", "multi", ("glyph-digits", "glyph-upper"))
    ds = DatasetStore(suite_home).load("glyph-upper")
    x, y = ds.split("val")
    network, card = load_card_and_network("zoo:mix", dataset="glyph-upper", home=suite_home, storage=storage)
    with torch.inference_mode():
        expected = network(card.preprocessing().batch(torch.from_numpy(x))).argmax(1).numpy()

    # the supernet's BatchNorm statistics are fixed when it loads: small batches give the same classes
    answer = run_json(capsys, "zoo:mix", "glyph-upper", "--dataset", "glyph-upper", "--split", "val",
                      "--out", tmp_path / "p.parquet", "--home", suite_home, "--storage", storage,
                      "--batch-size", 100)

    assert answer["classes"] == 26 and answer["predicted"] == len(y)
    assert pq.read_table(tmp_path / "p.parquet").column("class_index").to_pylist() == expected.tolist()
    assert answer["accuracy"] == pytest.approx(float(np.mean(expected == y)))


def test_parquet_with_encoded_images(ray_session, trained_run, suite_home, tmp_path, capsys):
    images, _ = dataset_images(suite_home, 6)
    cells = [png(im) for im in images]
    cells[2] = b"\x89PNG garbage"
    cells[4] = None
    source = tmp_path / "upload.parquet"
    pq.write_table(pa.table({"id": [f"id-{i}" for i in range(6)], "image": pa.array(cells, pa.binary())}), source)
    out = tmp_path / "preds.parquet"

    answer = run_json(capsys, trained_run, source, "--out", out, "--home", suite_home)

    assert answer["predicted"] == 4
    assert [(s["row"], s["id"]) for s in answer["skipped_files"]] == [(2, "id-2"), (4, "id-4")]
    table = pq.read_table(out)
    kept = [0, 1, 3, 5]
    assert table.column("row").to_pylist() == kept
    assert table.column("id").to_pylist() == [f"id-{i}" for i in kept]
    assert table.column("class_index").to_pylist() == plain_torch(trained_run, images[kept]).tolist()


def test_single_image_file(ray_session, trained_run, suite_home, tmp_path, capsys):
    images, _ = dataset_images(suite_home, 1)
    image = tmp_path / "one.png"
    image.write_bytes(png(images[0]))
    out = tmp_path / "out" / "one.parquet"  # a missing folder is made

    assert main(["predict", str(trained_run), str(image), "--out", str(out), "--home", str(suite_home)]) == 0

    assert "predicted 1 of 1 images" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column("path").to_pylist() == [str(image)]
    assert table.column("class_index").to_pylist() == plain_torch(trained_run, images).tolist()


def test_nothing_readable_fails_without_output(ray_session, trained_run, suite_home, tmp_path, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_text("not a png")
    out = tmp_path / "preds.parquet"

    assert main(["predict", str(trained_run), str(folder), "--out", str(out), "--home", str(suite_home)]) == 1

    assert "none of the 1 images could be read" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


@pytest.mark.parametrize("case, message", [
    ("no run", "no model (RUN) given"),
    ("no input", "no INPUT given"),
    ("no out", "no --out given"),
    ("missing run", "not found"),
    ("missing input", "neither a file or folder nor a stored dataset"),
    ("empty folder", "no image files in"),
    ("out is a folder", "is a folder"),
    ("out under a file", "is a file, not a folder"),
    ("batch size", "--batch-size 0 is out of range"),
    ("concurrency", "--concurrency 0 is out of range"),
    ("top k", "--top-k 0 is out of range"),
    ("unknown split", "unknown split 'dev'"),
    ("split of a folder", "--split applies to datasets"),
    ("parquet without images", "has no 'image' column"),
    ("neither image nor parquet", "nor a readable Parquet file"),
])
def test_bad_input(case, message, trained_run, suite_home, tmp_path, capsys):
    images, _ = dataset_images(suite_home, 1)
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(png(images[0]))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    plain = tmp_path / "table.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), plain)
    (tmp_path / "file.txt").write_text("a file")
    out = tmp_path / "preds.parquet"
    run, data, extra = str(trained_run), str(folder), []
    if case == "no run":
        run = data = None
    elif case == "no input":
        data = None
    elif case == "no out":
        out = None
    elif case == "missing run":
        run = str(tmp_path / "no-such-run")
    elif case == "missing input":
        data = str(tmp_path / "no-such-folder")
    elif case == "empty folder":
        data = str(empty)
    elif case == "out is a folder":
        out = empty
    elif case == "out under a file":
        out = tmp_path / "file.txt" / "preds.parquet"
    elif case == "batch size":
        extra = ["--batch-size", "0"]
    elif case == "concurrency":
        extra = ["--concurrency", "0"]
    elif case == "top k":
        extra = ["--top-k", "0"]
    elif case == "unknown split":
        data, extra = "glyph-digits", ["--split", "dev"]
    elif case == "split of a folder":
        extra = ["--split", "test"]
    elif case == "parquet without images":
        data = str(plain)
    elif case == "neither image nor parquet":
        data = str(tmp_path / "file.txt")
    before = sorted(p.name for p in tmp_path.iterdir())

    argv = [a for a in (run, data) if a is not None] + (["--out", str(out)] if out else []) + extra
    code = main(["predict", *argv, "--home", str(suite_home)])

    err = capsys.readouterr().err
    assert code == 1 and message in err and "fix:" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file


def test_bad_input_json_answer(trained_run, suite_home, tmp_path, capsys):
    code = main(["predict", str(trained_run), str(tmp_path / "nothing"), "--out", str(tmp_path / "p.parquet"),
                 "--home", str(suite_home), "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert code == 1 and "nor a stored dataset" in answer["error"] and answer["fix"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_folder(trained_run, suite_home, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        code = main(["predict", str(trained_run), "glyph-digits", "--out", str(locked / "p.parquet"),
                     "--home", str(suite_home)])
    finally:
        locked.chmod(0o700)
    assert code == 1 and "is not writable" in capsys.readouterr().err and not list(locked.iterdir())
