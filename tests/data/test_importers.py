"""Importers: class-per-folder trees, Meta-Album folders, .npz files, torchvision datasets."""

import csv

import numpy as np
import pytest
from PIL import Image

from raynas.data.importers import IMPORTERS, from_torchvision, row_order
from raynas.errors import RaynasError

imagefolder = IMPORTERS.get("imagefolder")
meta_album = IMPORTERS.get("meta-album")
npz = IMPORTERS.get("npz")


def _pixels(size=(10, 10), color=False, seed=0):
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if color else (size[1], size[0])
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _save(path, pixels, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kw)
    return pixels


def _tree(root, classes=("cat", "dog"), per_class=4, color=False, size=(10, 10), ext="png"):
    """A class-per-folder tree; returns {relative path: pixels} of what was written."""
    written = {}
    for ci, c in enumerate(classes):
        for i in range(per_class):
            rel = f"{c}/{i}.{ext}"
            written[rel] = _save(root / rel, _pixels(size, color, seed=100 * ci + i))
    return written


def test_importers_are_registered():
    assert {"imagefolder", "meta-album", "npz"} <= set(IMPORTERS.names())
    with pytest.raises(RaynasError, match="unknown import format 'zip'"):
        IMPORTERS.get("zip")


def test_imagefolder_gray_pngs_are_kept_exactly_and_non_images_skipped(tmp_path):
    root = tmp_path / "tree"
    written = _tree(root)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "cat" / "labels.csv").write_text("a,b\n")
    (root / "cat" / ".hidden.png").write_bytes(b"junk")
    (root / ".git").mkdir()
    (root / ".git" / "x.png").write_bytes(b"junk")
    ds = imagefolder(root, name="pets")
    assert ds.info.name == "pets" and ds.info.domain == "custom"
    assert ds.info.class_names == ("cat", "dog")
    assert ds.images.shape == (8, 1, 10, 10) and ds.images.dtype == np.uint8
    listed = sorted(written)  # classes in name order, files in name order, stored in a seeded random order
    order = [listed[i] for i in row_order(8)]
    np.testing.assert_array_equal(ds.images[:, 0], np.stack([written[r] for r in order]))
    np.testing.assert_array_equal(ds.labels, np.array([0] * 4 + [1] * 4)[row_order(8)])
    assert 0 < ds.labels[:4].sum() < 4  # not class by class
    assert ds.info.provenance["format"] == "imagefolder" and ds.info.provenance["source"] == str(root)
    assert ds.info.split_counts == {"train": 4, "val": 2, "test": 2}


def test_imagefolder_mixed_png_jpeg_gray_and_colour(tmp_path):
    root = tmp_path / "tree"
    _tree(root, classes=("a", "b"), per_class=3, size=(12, 12))  # gray PNG
    _save(root / "a" / "colour.jpg", _pixels((12, 12), color=True, seed=7), quality=95)
    _save(root / "b" / "gray.JPEG", _pixels((12, 12), seed=8))
    ds = imagefolder(root, name="mixed")
    assert ds.images.shape == (8, 3, 12, 12)  # one colour image makes the dataset colour
    gray_rows = ds.images[ds.labels == 1]
    assert all(np.array_equal(img[0], img[1]) and np.array_equal(img[1], img[2]) for img in gray_rows)
    assert imagefolder(root, name="mixed", channels=1).images.shape == (8, 1, 12, 12)


def test_rgb_files_with_equal_channels_are_stored_gray(tmp_path):
    root = tmp_path / "tree"
    for c in ("x", "y"):
        for i in range(3):
            gray = _pixels((8, 8), seed=i)
            _save(root / c / f"{i}.png", np.repeat(gray[..., None], 3, axis=2))
    ds = imagefolder(root, name="g")
    assert ds.images.shape == (6, 1, 8, 8)
    assert imagefolder(root, name="g", channels=3).images.shape == (6, 3, 8, 8)


def test_colour_to_gray_uses_luma(tmp_path):
    root = tmp_path / "tree"
    written = _tree(root, classes=("r", "s"), per_class=3, color=True, size=(6, 6))
    ds = imagefolder(root, name="c", channels=1)
    rgb = np.stack([written[r] for r in sorted(written)]).astype(np.float64)[row_order(6)]
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    assert np.abs(ds.images[:, 0].astype(np.float64) - luma).max() <= 1.0


def test_imagefolder_resizing_to_a_square(tmp_path):
    root = tmp_path / "tree"
    _tree(root, color=True, size=(20, 14))
    _save(root / "dog" / "extra.jpg", np.full((30, 30, 3), 200, np.uint8))
    ds = imagefolder(root, name="pets", image_size=12)
    assert ds.images.shape == (9, 3, 12, 12)
    flat = [img for img in ds.images if np.all(np.abs(img.astype(int) - 200) <= 3)]
    assert len(flat) == 1  # a flat image stays flat
    gray = imagefolder(root, name="pets", image_size=12, channels=1)
    assert gray.images.shape == (9, 1, 12, 12)


def test_corrupt_image_names_the_file(tmp_path):
    root = tmp_path / "tree"
    _tree(root)
    (root / "dog" / "2.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(RaynasError, match=r"cannot read image .*dog.2\.png") as err:
        imagefolder(root, name="x")
    assert "fix:" in str(err.value)


def test_truncated_jpeg_names_the_file(tmp_path):
    root = tmp_path / "tree"
    _tree(root, ext="jpg")
    data = (root / "cat" / "1.jpg").read_bytes()
    (root / "cat" / "1.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(RaynasError, match=r"cannot read image .*cat.1\.jpg"):
        imagefolder(root, name="x")


def test_imagefolder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RaynasError, match="no class folders"):
        imagefolder(tmp_path / "empty", name="x")
    with pytest.raises(RaynasError, match="not a directory"):
        imagefolder(tmp_path / "missing", name="x")
    root = tmp_path / "a"
    _tree(root)
    (root / "bird").mkdir()
    (root / "bird" / "readme.txt").write_text("no pictures here")
    with pytest.raises(RaynasError, match="class folder 'bird' has no image files"):
        imagefolder(root, name="x")
    root = tmp_path / "one_class"
    _tree(root, classes=("only",))
    with pytest.raises(RaynasError, match="at least 2 classes"):
        imagefolder(root, name="x")
    with pytest.raises(RaynasError, match="not valid"):
        imagefolder(root, name="Bad Name")


def test_a_class_too_small_to_split_is_named(tmp_path):
    root = tmp_path / "tree"
    _tree(root, classes=("cat",), per_class=4)
    _tree(root, classes=("dog",), per_class=2)
    with pytest.raises(RaynasError, match="class 'dog' has 2 images, too few"):
        imagefolder(root, name="x")


def test_differing_sizes_need_image_size(tmp_path):
    root = tmp_path / "tree"
    _tree(root)
    _save(root / "cat" / "big.png", _pixels((16, 16)))
    with pytest.raises(RaynasError, match=r"10x10 in .*[0-9]\.png, 16x16 in .*big\.png|16x16 in .*big\.png, "
                                          r"10x10 in .*[0-9]\.png") as err:
        imagefolder(root, name="x")
    assert "--image-size" in str(err.value)
    assert imagefolder(root, name="x", image_size=10).images.shape == (9, 1, 10, 10)


def test_non_square_images_need_image_size(tmp_path):
    root = tmp_path / "tree"
    _tree(root, size=(12, 8))
    with pytest.raises(RaynasError, match="not square"):
        imagefolder(root, name="x")
    assert imagefolder(root, name="x", image_size=8).images.shape == (8, 1, 8, 8)


@pytest.mark.parametrize("kwargs, message", [(dict(channels=2), "--channels must be 1 or 3"),
                                             (dict(image_size=3), "--image-size must be at least 4")])
def test_bad_options(tmp_path, kwargs, message):
    _tree(tmp_path / "tree")
    np.savez(tmp_path / "a.npz", x=np.zeros((6, 8, 8), np.uint8), y=np.arange(6) % 2)
    for imp, src in ((imagefolder, tmp_path / "tree"), (npz, tmp_path / "a.npz")):
        with pytest.raises(RaynasError, match=message):
            imp(src, name="x", **kwargs)


def test_sixteen_bit_png_keeps_its_contrast(tmp_path):
    root = tmp_path / "tree"
    for c in ("a", "b"):
        for i in range(3):
            path = root / c / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + i)
            Image.fromarray(ramp).save(path)
    assert Image.open(root / "a" / "0.png").mode == "I;16"
    ds = imagefolder(root, name="deep")
    flat = ds.images[0, 0].reshape(-1).astype(int)
    assert np.all(np.diff(flat) >= 0)  # brightness order kept
    assert len(np.unique(flat)) > 32  # and most of the 64 levels still distinct


def _meta_album(root, rows, make_files=True, size=(12, 12), color=True, header=("FILE_NAME", "CATEGORY")):
    (root / "images").mkdir(parents=True)
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*header, "SUPER_CATEGORY"])
        for i, (f, c) in enumerate(rows):
            w.writerow([f, c, "insects"])
            if make_files:
                _save(root / "images" / f, _pixels(size, color, seed=i))
    return root


def _rows(classes=("bees", "ants", "wasps"), per_class=3):
    return [(f"{c}_{i}.png", c) for c in classes for i in range(per_class)]


def test_meta_album(tmp_path):
    ds = meta_album(_meta_album(tmp_path / "INS", _rows()), name="insects")
    assert ds.info.class_names == ("ants", "bees", "wasps")  # sorted category names
    assert ds.images.shape == (9, 3, 12, 12) and ds.info.domain == "meta-album"
    np.testing.assert_array_equal(ds.labels, np.array([1, 1, 1, 0, 0, 0, 2, 2, 2])[row_order(9)])  # csv order, mixed
    assert ds.info.provenance["format"] == "meta-album"


def test_meta_album_gray_resized_and_custom_domain(tmp_path):
    root = _meta_album(tmp_path / "INS", _rows(), size=(20, 16), color=False)
    ds = meta_album(root, name="insects", image_size=8, domain="insects")
    assert ds.images.shape == (9, 1, 8, 8) and ds.info.domain == "insects"


def test_meta_album_errors(tmp_path):
    with pytest.raises(RaynasError, match="labels.csv not found"):
        meta_album(tmp_path, name="x")
    root = _meta_album(tmp_path / "bad_cols", _rows(), header=("FILE", "LABEL"))
    with pytest.raises(RaynasError, match=r"lacks the column\(s\) \['CATEGORY', 'FILE_NAME'\]"):
        meta_album(root, name="x")
    root = _meta_album(tmp_path / "missing_file", _rows())
    (root / "images" / "ants_1.png").unlink()
    with pytest.raises(RaynasError, match=r"ants_1\.png is listed in .*labels\.csv but does not exist"):
        meta_album(root, name="x")
    root = _meta_album(tmp_path / "no_rows", [])
    with pytest.raises(RaynasError, match="lists no images"):
        meta_album(root, name="x")
    root = _meta_album(tmp_path / "small", _rows() + [("moth_0.png", "moth"), ("moth_1.png", "moth")])
    with pytest.raises(RaynasError, match="class 'moth' has 2 images"):
        meta_album(root, name="x")


def test_npz_nchw_uint8_is_kept_exactly(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 1, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "nchw.npz", x=x, y=np.arange(12) % 3)
    ds = npz(tmp_path / "nchw.npz", name="a")
    assert ds.info.class_names == ("0", "1", "2") and ds.info.provenance["format"] == "npz"
    np.testing.assert_array_equal(ds.images, x)
    np.testing.assert_array_equal(ds.labels, np.arange(12) % 3)


def test_npz_nhwc_floats_and_string_labels(tmp_path):
    x = np.random.default_rng(1).random((12, 8, 8, 3))
    np.savez(tmp_path / "nhwc.npz", x=x, y=np.array(["dog", "cat"] * 6))
    ds = npz(tmp_path / "nhwc.npz", name="b")
    assert ds.images.shape == (12, 3, 8, 8) and ds.info.class_names == ("cat", "dog")
    np.testing.assert_array_equal(ds.images, np.rint(x * 255).astype(np.uint8).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(ds.labels, [1, 0] * 6)
    resized = npz(tmp_path / "nhwc.npz", name="b", image_size=16)
    assert resized.images.shape == (12, 3, 16, 16)
    assert npz(tmp_path / "nhwc.npz", name="b", channels=1).images.shape == (12, 1, 8, 8)


def test_npz_gray_stack_with_class_names_and_non_square_crop(tmp_path):
    x = np.random.default_rng(2).integers(0, 256, (9, 6, 10))
    np.savez(tmp_path / "hw.npz", x=x, y=np.arange(9) % 3, class_names=np.array(["a", "b", "c"]))
    ds = npz(tmp_path / "hw.npz", name="c", image_size=6)
    assert ds.info.class_names == ("a", "b", "c") and ds.images.shape == (9, 1, 6, 6)
    np.testing.assert_array_equal(ds.images[:, 0], x[:, :, 2:8].astype(np.uint8))  # centre crop, no resize


def test_npz_rgba_drops_alpha(tmp_path):
    x = np.random.default_rng(3).integers(0, 256, (6, 8, 8, 4), dtype=np.uint8)
    np.savez(tmp_path / "rgba.npz", x=x, y=np.arange(6) % 2)
    np.testing.assert_array_equal(npz(tmp_path / "rgba.npz", name="d").images, x[..., :3].transpose(0, 3, 1, 2))


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((6, 1, 8, 8), np.uint8), y=np.arange(5) % 2), "mismatched lengths: 6 images but 5 labels"),
    (dict(x=np.zeros((6, 1, 8, 8), np.uint8), y=np.array([0, 1, 2, 0, 1, 2]), class_names=np.array(["a", "b"])),
     "label 2 is out of range for 2 classes"),
    (dict(x=np.zeros((6, 1, 8, 8), np.uint8), y=np.array([0, 1, -1, 0, 1, 1])), "label -1 is out of range"),
    (dict(images=np.zeros((6, 1, 8, 8), np.uint8), labels=np.arange(6)), r"lacks the array\(s\) \['x', 'y'\]"),
    (dict(x=np.zeros((6, 1, 8, 8), np.uint8)), r"lacks the array\(s\) \['y'\]"),
    (dict(x=np.full((6, 1, 8, 8), 300.0), y=np.arange(6) % 2), "pixel values span 300..300"),
    (dict(x=np.full((6, 1, 8, 8), np.nan), y=np.arange(6) % 2), "NaN or infinite"),
    (dict(x=np.zeros((6, 8), np.uint8), y=np.arange(6) % 2), "expected \\(N, H, W\\)"),
    (dict(x=np.zeros((6, 2, 8, 8), np.uint8), y=np.arange(6) % 2), "expected \\(N, H, W\\)"),
    (dict(x=np.zeros((6, 1, 8, 8), np.uint8), y=np.array([0, 0, 0, 0, 1, 1])), "class '1' has 2 images"),
])
def test_npz_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(RaynasError, match=message):
        npz(path, name="x")


def test_npz_unreadable_or_missing(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(RaynasError, match=r"cannot read .*junk\.npz as \.npz"):
        npz(tmp_path / "junk.npz", name="x")
    with pytest.raises(RaynasError, match=r"missing\.npz not found"):
        npz(tmp_path / "missing.npz", name="x")
    np.savez(tmp_path / "objects.npz", x=np.array([np.zeros(3), np.zeros(4)], dtype=object), y=np.arange(2))
    with pytest.raises(RaynasError, match="cannot read"):
        npz(tmp_path / "objects.npz", name="x")


def test_from_torchvision_fake_data():
    from torchvision.datasets import FakeData

    ds = from_torchvision(FakeData(size=30, image_size=(3, 12, 12), num_classes=3, random_offset=1),
                          name="fake", class_names=["a", "b", "c"], image_size=8)
    assert ds.images.shape == (30, 3, 8, 8) and ds.info.class_names == ("a", "b", "c")
    assert ds.info.domain == "torchvision" and ds.info.provenance["source"] == "FakeData"


class _TinyPIL:
    """A map-style dataset the way torchvision writes them: PIL images, int targets, ``classes``."""

    classes = ["zero", "one", "two"]

    def __init__(self, n=9, size=6, odd_one=None):
        self.n, self.size, self.odd_one = n, size, odd_one

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        side = self.size + 2 if i == self.odd_one else self.size
        return Image.fromarray(np.full((side, side), 20 * i, np.uint8)), i % 3


def test_from_torchvision_pil_items_and_classes_attribute():
    ds = from_torchvision(_TinyPIL(), name="tiny")
    assert ds.images.shape == (9, 1, 6, 6) and ds.info.class_names == ("zero", "one", "two")
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], 20 * np.arange(9))
    np.testing.assert_array_equal(ds.labels, np.arange(9) % 3)
    assert from_torchvision(_TinyPIL(), name="tiny", channels=3, image_size=4).images.shape == (9, 3, 4, 4)


def test_from_torchvision_tensor_items_without_classes():
    import torch

    class Tensors:
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return torch.full((1, 6, 6), i / 8.0), torch.tensor(i % 2)

    ds = from_torchvision(Tensors(), name="tensors")
    assert ds.images.shape == (8, 1, 6, 6) and ds.info.class_names == ("0", "1")


def test_from_torchvision_errors():
    with pytest.raises(RaynasError, match="item 4 is 8x8, unlike the first item"):
        from_torchvision(_TinyPIL(odd_one=4), name="x")
    assert from_torchvision(_TinyPIL(odd_one=4), name="x", image_size=6).images.shape == (9, 1, 6, 6)
    with pytest.raises(RaynasError, match="is empty"):
        from_torchvision(_TinyPIL(n=0), name="x")
    with pytest.raises(RaynasError, match="has 2 images"):
        from_torchvision(_TinyPIL(n=8), name="x")


@pytest.mark.parametrize("y, names, labels", [
    ([0, 1, 2] * 4, ["0", "1", "2"], [0, 1, 2] * 4),  # 0..K-1 stays as it is
    ([0, 1, 3] * 4, ["0", "1", "3"], [0, 1, 2] * 4),  # a gap is closed; the name keeps the value
    ([7, 10**9] * 6, ["7", "1000000000"], [0, 1] * 6),  # two classes, not a billion
    (np.array([2.0, 5.0] * 6), ["2", "5"], [0, 1] * 6),  # whole-number floats
])
def test_npz_integer_labels_without_names_number_their_distinct_values(tmp_path, y, names, labels):
    np.savez(tmp_path / "a.npz", x=np.zeros((len(y), 8, 8), np.uint8), y=np.array(y))
    ds = npz(tmp_path / "a.npz", name="a")
    assert list(ds.info.class_names) == names
    np.testing.assert_array_equal(ds.labels, labels)


def test_from_torchvision_sparse_labels_without_classes():
    class Sparse:
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return Image.fromarray(np.full((6, 6), i, np.uint8)), (i % 2) * 10**9

    ds = from_torchvision(Sparse(), name="sparse")
    assert ds.info.class_names == ("0", "1000000000")
    np.testing.assert_array_equal(ds.labels, [0, 1] * 4)
