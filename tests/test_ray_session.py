"""Which Ray address raynas connects to: a job server's http:// address is never one of them."""

import json
import os
import signal

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


class FakeContext:
    dashboard_url = "127.0.0.1:8265"


@pytest.fixture
def fake_ray(monkeypatch):
    """``ray.init`` recorded instead of run, and what happened after it, in order; no Ray starts."""
    import ray

    import raynas.interrupts

    calls = []

    def init(address=None, **kwargs):
        calls.append(("init", address, kwargs))
        return FakeContext()

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(session, "_watch_local_ray", lambda context: calls.append(("watch",)))
    monkeypatch.setattr(session, "_probe", lambda address: None)
    monkeypatch.setattr(raynas.interrupts, "stop_on_sigterm", lambda: calls.append(("stop_on_sigterm",)))
    monkeypatch.setattr(session, "_settings", dict(session._settings))  # configure_ray's changes end with the test
    handler = signal.getsignal(signal.SIGTERM)  # main() installs raynas's own
    yield calls
    signal.signal(signal.SIGTERM, handler)


def test_a_local_ray_starts_quietly_without_the_dashboard_and_forwards_logs(fake_ray, capsys):
    session.ensure_ray()
    assert fake_ray == [("init", None, {"include_dashboard": False, "log_to_driver": True}),
                        ("stop_on_sigterm",), ("watch",)]
    assert capsys.readouterr().err == ""


def test_dashboard_on_127_0_0_1_and_its_url(fake_ray, monkeypatch, capsys):
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    session.configure_ray(dashboard=True)
    session.ensure_ray()
    assert fake_ray[0] == ("init", None, {"include_dashboard": True, "dashboard_host": "127.0.0.1",
                                          "log_to_driver": True})
    assert fake_ray[1] == ("stop_on_sigterm",)
    assert capsys.readouterr().err == "Ray dashboard: http://127.0.0.1:8265\n"
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # set by ray.init when it finds a token
    session._print_dashboard_url(FakeContext())
    assert "`ray get-auth-token`" in capsys.readouterr().err


def test_json_answers_keep_the_tasks_output_off_stdout(fake_ray):
    session.configure_ray(forward_logs=False)
    session.ensure_ray()
    assert fake_ray[0] == ("init", None, {"include_dashboard": False, "log_to_driver": False})


def test_a_cluster_gets_forwarded_logs_and_a_note_instead_of_a_dashboard(fake_ray, capsys):
    session.configure_ray(dashboard=True)
    session.ensure_ray("10.0.0.1:6379")
    assert fake_ray == [("init", "10.0.0.1:6379", {"log_to_driver": True}), ("stop_on_sigterm",)]
    err = capsys.readouterr().err
    assert err.startswith("note: --dashboard is ignored when connecting to a Ray cluster") and "http" not in err


def test_a_failed_connection_installs_nothing(fake_ray, monkeypatch):
    import ray

    def refuse(address=None, **kwargs):
        raise ConnectionError("refused")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(RaynasError):
        session.ensure_ray("10.0.0.1:6379")
    assert fake_ray == []


@pytest.mark.parametrize("flags, settings", [
    ([], {"dashboard": False, "forward_logs": True}),
    (["--dashboard"], {"dashboard": True, "forward_logs": True}),
    (["--json", "--dashboard"], {"dashboard": True, "forward_logs": False}),
])
def test_the_command_line_sets_how_ray_starts_without_starting_it(fake_ray, monkeypatch, tmp_path, flags, settings):
    monkeypatch.setattr(session, "ensure_ray", lambda *a, **kw: pytest.fail("zoo list needs no Ray"))
    assert main(["zoo", "list", "--home", str(tmp_path), *flags]) == 0
    assert session._settings == settings


def test_predict_sets_how_ray_starts_too(fake_ray, monkeypatch):
    """It starts Ray without opening a workspace."""
    seen = []
    monkeypatch.setattr("raynas.model.predict.predict", lambda *a, **kw: seen.append(dict(session._settings)) or {})
    monkeypatch.setattr("raynas.cli.predict.print_json", lambda answer: None)
    assert main(["predict", "RUN", "INPUT", "--out", "p.parquet", "--json", "--dashboard"]) == 0
    assert seen == [{"dashboard": True, "forward_logs": False}]


@pytest.mark.parametrize("command", [
    ["search", "glyph-digits"], ["zoo", "build"], ["zoo", "list"], ["zoo", "remove", "x"],
    ["distance", "glyph-digits"], ["predict", "RUN", "INPUT"], ["serve", "RUN"], ["bench", "transfer"],
])
def test_every_command_with_the_shared_options_takes_dashboard(command):
    from raynas.cli import build_parser

    args = build_parser().parse_args([*command, "--dashboard"])
    assert args.dashboard is True
