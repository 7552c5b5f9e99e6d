"""Importers: class-per-folder trees, Meta-Album folders, .npz files, torchvision datasets."""

import csv

import numpy as np
import pytest
from PIL import Image

from raynas.data.importers import IMPORTERS, from_torchvision
from raynas.errors import RaynasError


def _png(path, size=(10, 10), color=False, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size[1], size[0], 3) if color else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def _tree(root, classes=("cat", "dog"), per_class=4, color=False, size=(10, 10)):
    for c in classes:
        for i in range(per_class):
            _png(root / c / f"{i}.png", size, color, value=hash((c, i)) % 1000)
    return root


def test_imagefolder_gray_with_skipped_non_images(tmp_path):
    root = _tree(tmp_path / "tree")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    ds = IMPORTERS.get("imagefolder")(root, name="pets")
    assert ds.info.class_names == ("cat", "dog")
    assert ds.images.shape == (8, 1, 10, 10)
    assert ds.info.provenance["format"] == "imagefolder"


def test_imagefolder_colour_jpeg_and_resizing(tmp_path):
    root = _tree(tmp_path / "tree", color=True, size=(20, 14))
    Image.fromarray(np.full((30, 30, 3), 200, np.uint8)).save(root / "dog" / "extra.jpg")
    ds = IMPORTERS.get("imagefolder")(root, name="pets", image_size=12)
    assert ds.images.shape == (9, 3, 12, 12)
    gray = IMPORTERS.get("imagefolder")(root, name="pets", image_size=12, channels=1)
    assert gray.images.shape == (9, 1, 12, 12)


def test_imagefolder_errors(tmp_path):
    imp = IMPORTERS.get("imagefolder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RaynasError, match="no class folders"):
        imp(tmp_path / "empty", name="x")
    root = _tree(tmp_path / "a")
    (root / "bird").mkdir()
    with pytest.raises(RaynasError, match="class folder 'bird' has no image files"):
        imp(root, name="x")
    root = _tree(tmp_path / "b")
    (root / "dog" / "2.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(RaynasError, match=r"cannot read image .*2\.png"):
        imp(root, name="x")
    root = _tree(tmp_path / "c", per_class=2)
    with pytest.raises(RaynasError, match="class 'cat' has 2 images"):
        imp(root, name="x")
    root = _tree(tmp_path / "d")
    _png(root / "cat" / "big.png", size=(16, 16))
    with pytest.raises(RaynasError, match="--image-size"):
        imp(root, name="x")
    with pytest.raises(RaynasError, match="not a directory"):
        imp(tmp_path / "missing", name="x")


def _meta_album(root, rows, make_files=True):
    (root / "images").mkdir(parents=True)
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["FILE_NAME", "CATEGORY", "SUPER_CATEGORY"])
        for f, c in rows:
            w.writerow([f, c, "x"])
            if make_files:
                _png(root / "images" / f, (12, 12), color=True, value=len(f))
    return root


def test_meta_album(tmp_path):
    rows = [(f"{c}_{i}.jpg".replace(".jpg", ".png"), c) for c in ("ants", "bees", "wasps") for i in range(3)]
    ds = IMPORTERS.get("meta-album")(_meta_album(tmp_path / "INS", rows), name="insects")
    assert ds.info.class_names == ("ants", "bees", "wasps")
    assert ds.images.shape == (9, 3, 12, 12) and ds.info.domain == "meta-album"


def test_meta_album_errors(tmp_path):
    imp = IMPORTERS.get("meta-album")
    with pytest.raises(RaynasError, match="labels.csv not found"):
        imp(tmp_path, name="x")
    root = tmp_path / "bad_cols"
    root.mkdir()
    (root / "labels.csv").write_text("FILE,LABEL\na.png,x\n")
    with pytest.raises(RaynasError, match="lacks the column"):
        imp(root, name="x")
    root = _meta_album(tmp_path / "missing_file", [("a.png", "x"), ("b.png", "y")], make_files=False)
    with pytest.raises(RaynasError, match="a.png is listed"):
        imp(root, name="x")


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "nchw.npz", x=rng.integers(0, 256, (12, 1, 8, 8), dtype=np.uint8), y=np.arange(12) % 3)
    ds = IMPORTERS.get("npz")(tmp_path / "nchw.npz", name="a")
    assert ds.images.shape == (12, 1, 8, 8) and ds.info.class_names == ("0", "1", "2")
    np.savez(tmp_path / "nhwc.npz", x=rng.random((12, 8, 8, 3)), y=np.array(["cat", "dog"] * 6))
    ds = IMPORTERS.get("npz")(tmp_path / "nhwc.npz", name="b", image_size=16)
    assert ds.images.shape == (12, 3, 16, 16) and ds.info.class_names == ("cat", "dog")
    np.savez(tmp_path / "hw.npz", x=rng.integers(0, 256, (9, 6, 6)), y=np.arange(9) % 3,
             class_names=np.array(["a", "b", "c"]))
    assert IMPORTERS.get("npz")(tmp_path / "hw.npz", name="c").info.class_names == ("a", "b", "c")


def test_npz_errors(tmp_path):
    imp = IMPORTERS.get("npz")
    x = np.zeros((6, 1, 8, 8), np.uint8)
    np.savez(tmp_path / "len.npz", x=x, y=np.arange(5) % 2)
    with pytest.raises(RaynasError, match="mismatched lengths: 6 images but 5 labels"):
        imp(tmp_path / "len.npz", name="x")
    np.savez(tmp_path / "range.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]), class_names=np.array(["a", "b"]))
    with pytest.raises(RaynasError, match="label 2 is out of range"):
        imp(tmp_path / "range.npz", name="x")
    np.savez(tmp_path / "neg.npz", x=x, y=np.array([0, 1, -1, 0, 1, 1]))
    with pytest.raises(RaynasError, match="label -1 is out of range"):
        imp(tmp_path / "neg.npz", name="x")
    np.savez(tmp_path / "keys.npz", images=x, labels=np.arange(6))
    with pytest.raises(RaynasError, match=r"lacks the array\(s\) \['x', 'y'\]"):
        imp(tmp_path / "keys.npz", name="x")
    np.savez(tmp_path / "scale.npz", x=np.full((6, 1, 8, 8), 300.0), y=np.arange(6) % 2)
    with pytest.raises(RaynasError, match="pixel values span"):
        imp(tmp_path / "scale.npz", name="x")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(RaynasError, match="cannot read"):
        imp(tmp_path / "junk.npz", name="x")


def test_from_torchvision_fake_data():
    from torchvision.datasets import FakeData

    ds = from_torchvision(FakeData(size=30, image_size=(3, 12, 12), num_classes=3, random_offset=1),
                          name="fake", class_names=["a", "b", "c"], image_size=8)
    assert ds.images.shape == (30, 3, 8, 8) and ds.info.class_names == ("a", "b", "c")


def test_from_torchvision_tensor_items_and_classes_attribute():
    import torch

    class Tiny:
        classes = ["zero", "one"]

        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.full((1, 6, 6), i / 8.0), i % 2

    ds = from_torchvision(Tiny(), name="tiny")
    assert ds.images.shape == (8, 1, 6, 6) and ds.info.class_names == ("zero", "one")
