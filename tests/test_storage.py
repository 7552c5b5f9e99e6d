"""Storage roots on paths and URIs: atomic writes, listing, and errors that name the storage."""

import sys

import pyarrow as pa
import pytest

from raynas.errors import RaynasError
from raynas.storage import Storage


def test_write_read_list_delete(tmp_path):
    s = Storage(tmp_path / "root")
    s.write_bytes(b"one", "a", "x.bin")
    s.write_bytes(b"two", "a", "x.bin")  # replaced atomically
    assert s.read_bytes("a", "x.bin") == b"two" and s.exists("a", "x.bin")
    assert s.listdir() == ["a"] and s.listdir("a", dirs=False) == ["x.bin"]
    assert sorted(p.name for p in (tmp_path / "root" / "a").iterdir()) == ["x.bin"]  # no temporary files left
    assert s.stat("a", "x.bin")[1] == 3 and s.stat("a", "nope") is None
    assert s.listdir("missing") == []
    with pytest.raises(FileNotFoundError):
        s.read_bytes("a", "nope")
    s.delete("a")
    s.delete("a")  # already gone: fine
    assert s.listdir() == []


def test_children_of_a_uri_keep_its_query():
    s = Storage("s3://bucket/raynas?region=eu-west-1&scheme=http")
    zoo, emb = s.child("zoo"), s.child("embeddings")
    assert zoo.uri == "s3://bucket/raynas/zoo?region=eu-west-1&scheme=http"
    assert (zoo.root, emb.root) == ("bucket/raynas/zoo", "bucket/raynas/embeddings")
    again = Storage(zoo.uri)
    assert again.root == "bucket/raynas/zoo"


def test_an_s3_root_writes_reads_lists_and_deletes(s3_uri):
    s = Storage(s3_uri)
    s.write_bytes(b"one", "a", "x.bin")
    s.write_bytes(b"two", "a", "x.bin")
    assert s.read_bytes("a", "x.bin") == b"two" and s.exists("a", "x.bin") and not s.exists("a", "y.bin")
    assert s.listdir() == ["a"] and s.listdir("a", dirs=False) == ["x.bin"]  # no temporary keys left
    assert s.stat("a", "x.bin")[1] == 3 and s.stat("a", "nope") is None
    with pytest.raises(FileNotFoundError):
        s.read_bytes("a", "nope")
    s.delete("a")
    assert s.listdir() == []


def test_file_uri_and_bad_uri(tmp_path):
    Storage(f"file://{tmp_path}/u").write_bytes(b"x", "f")
    assert (tmp_path / "u" / "f").read_bytes() == b"x"
    with pytest.raises(RaynasError, match="cannot open storage 'nosuchscheme://x'"):
        Storage("nosuchscheme://x")


class _Unreachable:
    """A filesystem whose every call fails as a network error would."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise OSError("connection refused")
        return fail


@pytest.mark.parametrize("call", [lambda s: s.listdir(), lambda s: s.read_bytes("a"), lambda s: s.exists("a"),
                                  lambda s: s.write_bytes(b"x", "a"), lambda s: s.delete("a"),
                                  lambda s: s.stat("a")])
def test_storage_failures_are_not_mistaken_for_missing_files(tmp_path, call):
    s = Storage(tmp_path)
    s.fs = _Unreachable()
    with pytest.raises(RaynasError, match=r"cannot access .* on storage .*connection refused") as err:
        call(s)
    assert "credentials" in str(err.value)


def test_arrow_errors_are_storage_failures_too(tmp_path, monkeypatch):
    s = Storage(tmp_path)

    def broken(*args, **kwargs):
        raise pa.ArrowIOError("throttled")

    monkeypatch.setattr(s, "fs", type("FS", (), {"get_file_info": staticmethod(broken)})())
    with pytest.raises(RaynasError, match="throttled"):
        s.listdir()


@pytest.mark.parametrize("key", ["..", "../x", "a/../../b", "/etc/passwd", "a//b", "./a", "a\\..\\b"])
def test_keys_that_would_leave_the_root_are_refused(tmp_path, key):
    s = Storage(tmp_path / "root")
    for call in (lambda: s.read_bytes(key), lambda: s.write_bytes(b"x", key), lambda: s.delete(key),
                 lambda: s.child(key)):
        with pytest.raises(RaynasError, match="is not allowed"):
            call()
    assert not (tmp_path / "root").exists() or list((tmp_path / "root").iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_a_folder_replaces_a_folder_in_one_step(tmp_path, monkeypatch):
    """With RENAME_EXCHANGE the old folder is never renamed aside: no moment (or crash) without one."""
    import raynas.storage as storage

    old, new = tmp_path / "data", tmp_path / "new"
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "part-00000.parquet").write_text(text)

    def no_aside(path):
        raise AssertionError("the old folder was renamed aside")

    monkeypatch.setattr(storage, "_aside", no_aside)
    storage.replace_entry(new, old)
    assert (old / "part-00000.parquet").read_text() == "new" and not new.exists()
