"""The Parquet dataset format: exact round trips, metadata for plain readers, hashes, safe writes."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raynas.data.format import content_hash, make_dataset, read_dataset, read_info, tensor_column, write_dataset
from raynas.errors import RaynasError


def _dataset(n=30, c=1, h=8, w=8, k=3, seed=0, name="toy"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    labels = np.arange(n) % k
    return make_dataset(name, images, labels, [f"class{i}" for i in range(k)], domain="test",
                        provenance={"origin": "unit test"})


def _meta(path):
    return {k.decode(): v.decode() for k, v in pq.read_schema(path).metadata.items()}


def _rewrite_column(path, name, values, type_):
    """Replace one column in place, keeping the schema metadata (and so the stored hash)."""
    table = pq.read_table(path)
    index = table.schema.get_field_index(name)
    pq.write_table(table.set_column(index, name, pa.array(values, type_)), path)


def _assert_same(back, ds):
    assert back.info == ds.info
    assert back.images.dtype == np.uint8 and back.labels.dtype == np.int32
    np.testing.assert_array_equal(back.images, ds.images)
    np.testing.assert_array_equal(back.labels, ds.labels)
    np.testing.assert_array_equal(back.splits, ds.splits)


@settings(max_examples=25, deadline=None)
@given(n_per_class=st.integers(3, 12), c=st.sampled_from([1, 3]), h=st.integers(4, 12), w=st.integers(4, 12),
       k=st.integers(2, 5), seed=st.integers(0, 2 ** 16))
def test_round_trip_is_exact(tmp_path_factory, n_per_class, c, h, w, k, seed):
    ds = _dataset(n_per_class * k, c, h, w, k, seed)
    path = write_dataset(ds, tmp_path_factory.mktemp("rt") / "toy.parquet")
    _assert_same(read_dataset(path, verify=True), ds)
    assert read_info(path) == ds.info
    # any pyarrow reader sees the same (C, H, W) tensors, whatever C is
    column = pq.read_table(path).column("image").combine_chunks()
    assert list(column.type.shape) == [c, h, w]
    np.testing.assert_array_equal(column.to_numpy_ndarray(), ds.images)


def test_info_describes_the_dataset():
    ds = _dataset(n=30, c=3, h=8, w=6, k=3)
    info = ds.info
    assert info.name == "toy" and info.domain == "test" and info.shape == (3, 8, 6)
    assert info.class_names == ("class0", "class1", "class2") and info.num_classes == 3
    assert info.num_images == 30 and sum(info.split_counts.values()) == 30
    assert info.split_counts == {s: int(np.sum(ds.splits == s)) for s in ("train", "val", "test")}
    assert info.provenance["origin"] == "unit test" and info.provenance["split_seed"] == 0
    row = info.to_json()
    assert {"name": "toy", "domain": "test", "classes": 3, "images": 30, "shape": [3, 8, 6]}.items() <= row.items()
    json.dumps(row)  # serialisable as is


@pytest.mark.parametrize("c", [1, 3])
def test_plain_pyarrow_reads_the_file_and_its_metadata(tmp_path, c):
    ds = _dataset(c=c, h=8, w=6)
    path = write_dataset(ds, tmp_path / "toy.parquet")
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    for key in ("name", "class_names", "domain", "provenance", "version", "content_hash"):
        assert key in meta
    assert meta["name"] == "toy" and meta["domain"] == "test" and meta["version"] == "1"
    assert meta["content_hash"] == ds.info.content_hash
    assert json.loads(meta["class_names"]) == ["class0", "class1", "class2"]
    assert json.loads(meta["provenance"])["origin"] == "unit test"
    image_type = table.schema.field("image").type
    assert isinstance(image_type, pa.FixedShapeTensorType)
    assert image_type.value_type == pa.uint8() and list(image_type.shape) == [c, 8, 6]
    # one channel once produced a permuted type; the layout must be plain C order
    assert not image_type.permutation or list(image_type.permutation) == [0, 1, 2]
    np.testing.assert_array_equal(table.column("image").combine_chunks().to_numpy_ndarray(), ds.images)
    assert table.schema.field("label").type == pa.int32()
    assert table.column("label").to_pylist() == ds.labels.tolist()
    assert table.column("split").to_pylist() == ds.splits.tolist()


def test_content_hash_is_stable_and_tracks_every_pixel():
    a, b = _dataset(seed=1), _dataset(seed=1)
    assert a.info.content_hash == b.info.content_hash
    assert a.info.content_hash == content_hash(a.images, a.labels, a.splits, a.info.class_names)
    for index in [(0, 0, 0, 0), (29, 0, 7, 7), (12, 0, 3, 5)]:
        images = a.images.copy()
        images[index] ^= 1
        changed = make_dataset("toy", images, a.labels, a.info.class_names, domain="test")
        assert changed.info.content_hash != a.info.content_hash
    renamed = make_dataset("toy", a.images, a.labels, ["x", "y", "z"], domain="test")
    assert renamed.info.content_hash != a.info.content_hash
    # the name, domain and provenance describe the data but are not part of it
    other = make_dataset("other", a.images, a.labels, a.info.class_names, domain="elsewhere")
    assert other.info.content_hash == a.info.content_hash


def test_tampered_labels_are_refused_when_verified(tmp_path):
    ds = _dataset()
    path = write_dataset(ds, tmp_path / "toy.parquet")
    labels = ds.labels.copy()
    labels[0] = (labels[0] + 1) % 3
    _rewrite_column(path, "label", labels, pa.int32())
    assert read_dataset(path).labels[0] == labels[0]  # without verification it loads
    with pytest.raises(RaynasError, match="does not match its content hash"):
        read_dataset(path, verify=True)


def test_tampered_pixels_are_refused_when_verified(tmp_path):
    ds = _dataset()
    path = write_dataset(ds, tmp_path / "toy.parquet")
    table = pq.read_table(path)
    images = ds.images.copy()
    images[5, 0, 2, 2] ^= 0x80
    pq.write_table(table.set_column(0, "image", tensor_column(images)), path)
    with pytest.raises(RaynasError, match="does not match its content hash") as err:
        read_dataset(path, verify=True)
    assert str(path) in str(err.value) and "fix:" in str(err.value)


def test_moving_images_between_train_and_test_is_refused_when_verified(tmp_path):
    ds = _dataset()
    split = ds.splits.copy()
    i, j = int(np.flatnonzero(split == "train")[0]), int(np.flatnonzero(split == "test")[0])
    split[i], split[j] = "test", "train"
    assert content_hash(ds.images, ds.labels, split, ds.info.class_names) != ds.info.content_hash
    path = write_dataset(ds, tmp_path / "toy.parquet")
    _rewrite_column(path, "split", split.tolist(), pa.string())
    with pytest.raises(RaynasError, match="content hash"):
        read_dataset(path, verify=True)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    old = _dataset(seed=1)
    path = write_dataset(old, tmp_path / "toy.parquet")

    def broken_write(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(_dataset(seed=2), path)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(_dataset(seed=3), tmp_path / "new.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.parquet"]  # no temp files, no half file
    monkeypatch.undo()
    _assert_same(read_dataset(path, verify=True), old)


def test_overwrite_replaces_the_file(tmp_path):
    path = write_dataset(_dataset(seed=1), tmp_path / "toy.parquet")
    new = _dataset(seed=2, c=3)
    write_dataset(new, path)
    _assert_same(read_dataset(path, verify=True), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.parquet"]


def test_split_selects_rows_in_file_order():
    ds = _dataset()
    x, y = ds.split("val")
    mask = ds.splits == "val"
    np.testing.assert_array_equal(x, ds.images[mask])
    np.testing.assert_array_equal(y, ds.labels[mask])
    x, _ = ds.split("train", "val")
    assert len(x) == ds.info.split_counts["train"] + ds.info.split_counts["val"]
    with pytest.raises(RaynasError, match="unknown split 'holdout'"):
        ds.split("holdout")


def test_not_a_raynas_file(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    with pytest.raises(RaynasError, match="not a raynas dataset"):
        read_info(path)
    with pytest.raises(RaynasError, match="not a raynas dataset"):
        read_dataset(path)
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    for reader in (read_info, read_dataset):
        with pytest.raises(RaynasError, match=r"cannot read dataset file .*junk\.parquet"):
            reader(tmp_path / "junk.parquet")
    with pytest.raises(RaynasError, match="cannot read dataset file"):
        read_info(tmp_path / "missing.parquet")
