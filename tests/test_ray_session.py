"""Which Ray address raynas connects to: a job server's http:// address is never one of them."""

import json
import os

import pytest

import raynas.ray_session as session
from raynas.cli import main
from raynas.errors import RaynasError

JOB_SERVER = "http://127.0.0.1:8265"


@pytest.fixture(autouse=True)
def _fresh_notes(monkeypatch):
    monkeypatch.setattr(session, "_noted", set())
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_an_explicit_job_server_address_is_refused_with_the_fix():
    with pytest.raises(RaynasError) as caught:
        session.cluster_address("https://head.example:8265/")
    assert "job server" in caught.value.problem
    assert "ray job submit" in caught.value.fix and "ray://HEAD:10001" in caught.value.fix


def test_a_job_server_address_in_the_environment_is_ignored_with_one_note(monkeypatch, capsys):
    monkeypatch.setenv("RAY_ADDRESS", JOB_SERVER)
    assert session.cluster_address() is None
    assert session.cluster_address() is None
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and "RAY_API_SERVER_ADDRESS" in err
    assert session.cluster_address("auto") == "auto"  # --address still wins


def test_a_cluster_address_in_the_environment_is_used(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what Ray sets for a job's driver
    assert session.cluster_address() == "10.0.0.1:6379"
    assert session.cluster_address("ray://head:10001") == "ray://head:10001"


@pytest.mark.parametrize("address", [None, "auto"])
def test_ray_init_never_sees_the_job_server_address(monkeypatch, address):
    """Ray reads $RAY_ADDRESS itself when the address is None or "auto"."""
    import ray

    seen = []

    def init(address=None, **kwargs):
        seen.append((address, os.environ.get("RAY_ADDRESS")))

    monkeypatch.setenv("RAY_ADDRESS", JOB_SERVER)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(session, "_watch_local_ray", lambda context: None)
    session.ensure_ray(address)
    assert seen == [(address, None)]
    assert os.environ["RAY_ADDRESS"] == JOB_SERVER  # left for `ray job submit` in the same process


def test_commands_work_in_a_shell_set_up_for_ray_job_submit(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RAY_ADDRESS", JOB_SERVER)
    monkeypatch.setattr(session, "ensure_ray", lambda *a, **kw: pytest.fail("no cluster to connect to"))
    monkeypatch.setattr("raynas.service.handles._ray_connected", lambda: False)
    assert main(["zoo", "list", "--json", "--home", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and "is a Ray job server's address" in err


def test_an_explicit_job_server_address_fails_the_command_clearly(capsys, tmp_path):
    assert main(["zoo", "list", "--home", str(tmp_path), "--address", JOB_SERVER]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --address {JOB_SERVER} is the address of a Ray job server") and "fix: " in err
