"""The Parquet dataset format: exact round trips, metadata for plain readers, safe writes."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raynas.data.format import make_dataset, read_dataset, read_info, write_dataset
from raynas.errors import RaynasError


def _dataset(n=30, c=1, h=8, w=8, k=3, seed=0, name="toy"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
    labels = np.arange(n) % k
    return make_dataset(name, images, labels, [f"class{i}" for i in range(k)], domain="test",
                        provenance={"origin": "unit test"})


@settings(max_examples=25, deadline=None)
@given(n_per_class=st.integers(3, 12), c=st.sampled_from([1, 3]), h=st.integers(4, 12), w=st.integers(4, 12),
       k=st.integers(2, 5), seed=st.integers(0, 2 ** 16))
def test_round_trip_is_exact(tmp_path_factory, n_per_class, c, h, w, k, seed):
    ds = _dataset(n_per_class * k, c, h, w, k, seed)
    path = write_dataset(ds, tmp_path_factory.mktemp("rt") / "toy.parquet")
    back = read_dataset(path, verify=True)
    assert back.info == ds.info
    np.testing.assert_array_equal(back.images, ds.images)
    np.testing.assert_array_equal(back.labels, ds.labels)
    np.testing.assert_array_equal(back.splits, ds.splits)


def test_plain_pyarrow_reads_the_file_and_its_metadata(tmp_path):
    ds = _dataset(c=1)
    path = write_dataset(ds, tmp_path / "toy.parquet")
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    for key in ("name", "class_names", "domain", "provenance", "version", "content_hash"):
        assert key in meta
    assert json.loads(meta["class_names"]) == ["class0", "class1", "class2"]
    assert json.loads(meta["provenance"])["origin"] == "unit test"
    image_type = table.schema.field("image").type
    assert isinstance(image_type, pa.FixedShapeTensorType)
    assert image_type.value_type == pa.uint8() and list(image_type.shape) == [1, 8, 8]
    assert not image_type.permutation or list(image_type.permutation) == [0, 1, 2]  # plain C order
    np.testing.assert_array_equal(table.column("image").combine_chunks().to_numpy_ndarray(), ds.images)
    assert table.schema.field("label").type == pa.int32()
    assert set(table.column("split").to_pylist()) == {"train", "val", "test"}


def test_content_hash_tracks_the_pixels():
    a, b = _dataset(seed=1), _dataset(seed=1)
    assert a.info.content_hash == b.info.content_hash
    images = a.images.copy()
    images[0, 0, 0, 0] ^= 1
    changed = make_dataset("toy", images, a.labels, a.info.class_names, domain="test")
    assert changed.info.content_hash != a.info.content_hash


def test_tampered_file_is_refused_when_verified(tmp_path):
    ds = _dataset()
    path = write_dataset(ds, tmp_path / "toy.parquet")
    table = pq.read_table(path)
    labels = table.column("label").to_numpy().copy()
    labels[0] = (labels[0] + 1) % 3
    pq.write_table(table.set_column(1, "label", pa.array(labels, pa.int32())), path)
    read_dataset(path)  # without verification it loads
    with pytest.raises(RaynasError, match="content hash"):
        read_dataset(path, verify=True)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = write_dataset(_dataset(seed=1), tmp_path / "toy.parquet")
    before = read_info(path).content_hash

    def broken_write(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(_dataset(seed=2), path)
    assert read_info(path).content_hash == before
    assert [p.name for p in tmp_path.iterdir()] == ["toy.parquet"]


def test_not_a_raynas_file(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    with pytest.raises(RaynasError, match="not a raynas dataset"):
        read_info(path)
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(RaynasError, match="cannot read"):
        read_info(tmp_path / "junk.parquet")
