"""The scripts in examples/ run end to end (slow: a few minutes in all). Their calls are not
checked by anything else: one of them kept an argument the library had dropped."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
@pytest.mark.parametrize("script, expect", [("import_and_show.py", "grid"),
                                            ("search_and_retrain.py", "retrain"),
                                            ("zoo_and_warm_start.py", "winner:")])
def test_an_example_runs_to_the_end(tmp_path, script, expect):
    run = subprocess.run([sys.executable, str(EXAMPLES / script), "--home", str(tmp_path / "home")],
                         capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert expect in run.stdout.lower(), run.stdout[-2000:]
