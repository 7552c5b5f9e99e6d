"""The benchmark's console lines when an arm's trial crashes: retried, or out of retries."""

from types import SimpleNamespace

from raynas.bench.progress import BenchProgress


def _trial(tmp_path, failures: int):
    error = tmp_path / "error.txt"
    error.write_text("Failure # 1 (occurred at 2026-12-06)\nTraceback (most recent call last):\n  ...\n"
                     "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n")
    pick = {"target": "digits", "arm": "ot", "seed": 0, "source": "mnist5k"}
    return SimpleNamespace(config={"pick": pick}, error_file=str(error), num_failures=failures)


def test_a_retried_arm_says_why_and_how_often(tmp_path):
    lines = []
    BenchProgress(lambda source: 16, lines.append).on_trial_recover(0, [], _trial(tmp_path, 1))
    assert lines == ["digits/ot/seed0 from mnist5k: crashed (The actor died unexpectedly before finishing this "
                     "task.); retried from its last checkpoint (1 failure(s) so far)"]


def test_an_arm_out_of_retries_says_it_failed(tmp_path):
    lines = []
    BenchProgress(lambda source: 16, lines.append).on_trial_error(0, [], _trial(tmp_path, 3))
    assert lines[0].startswith("digits/ot/seed0 from mnist5k: FAILED (The actor died unexpectedly")
    assert "no retries left" in lines[0]
