"""Datasets on shared storage (a local S3 server): imported once, found and fetched by another home."""

import numpy as np
import pytest

import raynas.data.format as format_mod
from raynas.cli import main
from raynas.data import DatasetStore
from raynas.data.importers import FILE_IMPORTS
from raynas.errors import RaynasError


def _npz(path, n=60, seed=0, side=8):
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8), y=np.arange(n) % 3)
    return path


@pytest.mark.parametrize("sharded", [False, True])
def test_an_import_on_shared_storage_is_found_and_fetched_by_another_home(tmp_path, s3_uri, monkeypatch, sharded):
    if sharded:
        monkeypatch.setattr(format_mod, "SHARD_BYTES", 20 * 3 * 8 * 8)  # 20 images a shard
    here = DatasetStore(tmp_path / "a", s3_uri)
    here.save_streamed(FILE_IMPORTS.get("npz")(_npz(tmp_path / "in.npz"), name="cells"))
    assert here.path("cells").is_dir() == sharded
    shared = here.shared.storage
    assert (shared.exists("cells", "_dataset.json") if sharded else shared.exists("cells.parquet"))

    there = DatasetStore(tmp_path / "b", s3_uri)  # another node: nothing in its home yet
    assert "cells" in there.names() and there.exists("cells")
    info = there.info("cells")  # from the shared index or footer alone
    assert info == here.info("cells") and not there.path("cells").exists()
    ds = there.load("cells", verify=True)  # fetched, then read
    assert there.path("cells").exists() and there.path("cells").is_dir() == sharded
    assert np.array_equal(ds.images, here.load("cells").images) and ds.info.content_hash == info.content_hash
    assert there.open("cells").split_images("train", np.arange(3)).shape == (3, 3, 8, 8)


def test_a_replaced_shared_dataset_is_fetched_again_and_remove_deletes_both(tmp_path, s3_uri):
    a, b = DatasetStore(tmp_path / "a", s3_uri), DatasetStore(tmp_path / "b", s3_uri)
    a.save_streamed(FILE_IMPORTS.get("npz")(_npz(tmp_path / "one.npz", seed=1), name="cells"))
    first = b.load("cells").info.content_hash
    with pytest.raises(RaynasError, match="already exists"):
        DatasetStore(tmp_path / "c", s3_uri).save_streamed(
            FILE_IMPORTS.get("npz")(_npz(tmp_path / "two.npz", seed=2), name="cells"))
    a.save_streamed(FILE_IMPORTS.get("npz")(_npz(tmp_path / "two.npz", seed=2), name="cells"), overwrite=True)
    second = b.load("cells").info.content_hash  # b's copy is older: fetched again
    assert second != first and second == a.info("cells").content_hash
    b.remove("cells")
    assert not a.shared.exists("cells") and not b.path("cells").exists()
    assert "cells" not in DatasetStore(tmp_path / "c", s3_uri).names()


def test_the_cli_imports_to_and_lists_from_shared_storage(tmp_path, s3_uri, capsys):
    src = _npz(tmp_path / "in.npz")
    assert main(["data", "import", str(src), "--name", "cells", "--home", str(tmp_path / "a"),
                 "--storage", s3_uri]) == 0
    assert main(["data", "list", "--json", "--home", str(tmp_path / "b"), "--storage", s3_uri]) == 0
    out = capsys.readouterr().out
    assert '"name": "cells"' in out
    assert main(["data", "import", str(src), "--name", "cells", "--home", str(tmp_path / "b"),
                 "--storage", s3_uri]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "show", "cells", "--home", str(tmp_path / "b"), "--storage", s3_uri,
                 "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").is_file()


def test_a_search_on_another_home_trains_on_the_shared_dataset(tmp_path, s3_uri, ray_session, capsys):
    """The race's trial (a Ray worker) opens the workspace from the storage URI and fetches the data."""
    src = _npz(tmp_path / "in.npz", n=90, side=16)
    assert main(["data", "import", str(src), "--name", "cells", "--home", str(tmp_path / "a"),
                 "--storage", s3_uri]) == 0
    capsys.readouterr()
    assert main(["search", "cells", "--preset", "tiny", "--epochs", "1", "--max-steps", "2", "--transfer", "scratch",
                 "--loader", "stream", "--home", str(tmp_path / "b"), "--storage", s3_uri, "--json"]) == 0
    assert '"winner"' in capsys.readouterr().out
    assert DatasetStore(tmp_path / "b").path("cells").is_file()  # the copy the search read


def test_a_failed_upload_is_named_hides_its_shards_and_the_rerun_with_overwrite_replaces_them(tmp_path, s3_uri,
                                                                                               monkeypatch):
    from raynas.storage import Storage

    monkeypatch.setattr(format_mod, "SHARD_BYTES", 20 * 3 * 8 * 8)  # 3 shards
    here = DatasetStore(tmp_path / "a", s3_uri)
    plan = FILE_IMPORTS.get("npz")(_npz(tmp_path / "in.npz"), name="cells")
    real, sent = Storage.upload, []

    def drops_after_one(self, local, *parts):  # the connection drops after the first shard
        if sent:
            raise OSError(104, "Connection reset by peer")
        sent.append(parts)
        return real(self, local, *parts)

    monkeypatch.setattr(Storage, "upload", drops_after_one)
    with pytest.raises(RaynasError, match="stored in the home .* but its upload to the shared storage .* failed: "
                                          "Connection reset by peer") as err:
        here.save_streamed(plan)
    assert "again with --overwrite" in err.value.fix
    assert here.path("cells").is_dir() and here.shared.storage.exists("cells", "part-00000.parquet")
    elsewhere = DatasetStore(tmp_path / "b", s3_uri)
    assert "cells" not in elsewhere.names()  # no index: the shard it wrote is invisible

    monkeypatch.setattr(Storage, "upload", real)
    here.save_streamed(plan, overwrite=True)
    assert elsewhere.load("cells", verify=True).info.content_hash == here.info("cells").content_hash
