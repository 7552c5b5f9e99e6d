"""A raynas command submitted as a Ray job to a local two-node cluster (cluster/local.sh)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_job(client, entrypoint, timeout=300):
    from ray.job_submission import JobStatus

    job = client.submit_job(entrypoint=entrypoint,
                            runtime_env={"working_dir": str(ROOT), "excludes": [".venv", ".git", "runs"]})
    deadline = time.time() + timeout
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.time() < deadline, "job did not finish in time"
        time.sleep(2)
    return status, client.get_job_logs(job)


@pytest.mark.cluster
def test_ray_job_submit_runs_a_raynas_command(ray_session, tmp_path):
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", RAY_USAGE_STATS_ENABLED="0")
    local = str(ROOT / "cluster" / "local.sh")
    subprocess.run([local, "start"], check=True, env=env, capture_output=True)
    try:
        client = JobSubmissionClient("http://127.0.0.1:8265")
        status, logs = _run_job(client, f"python jobs/raynas_job.py data list --json --home {tmp_path}")
        assert status == JobStatus.SUCCEEDED, logs
        rows = json.loads(logs[logs.index("[\n  {"):logs.rindex("]") + 1])
        assert "glyph-greek" in {r["name"] for r in rows}

        # a zoo build inside the job: sources run as Tune trials and publish through the zoo actor
        status, logs = _run_job(client, f"python jobs/raynas_job.py zoo build --datasets digits,textures "
                                        f"--preset tiny --epochs 1 --max-steps 2 --json --home {tmp_path}")
        assert status == JobStatus.SUCCEEDED, logs
        from raynas.zoo.store import Zoo

        assert Zoo(tmp_path / "zoo").names() == ["digits", "textures"]
    finally:
        stop = subprocess.run([local, "stop"], env=env, capture_output=True, text=True)
    assert stop.returncode == 0, stop.stderr
    # `local.sh stop` ends its own cluster only: nothing of it is left, and this session's Ray still answers
    left = subprocess.run(["pgrep", "-f", "raynas-local-ray"], capture_output=True, text=True).stdout.split()
    assert left == [], left
    assert ray.get(ray.remote(num_cpus=0)(lambda: 7).remote(), timeout=60) == 7


@pytest.mark.parametrize("script, usage", [("search.py", "raynas search"), ("build_zoo.py", "raynas zoo build"),
                                           ("bench_transfer.py", "raynas bench transfer")])
def test_job_entrypoints_take_their_commands_arguments(script, usage):
    out = subprocess.run([sys.executable, str(ROOT / "jobs" / script), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"usage: {usage}" in out.stdout
