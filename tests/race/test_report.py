"""race.json is checked field by field before a resume acts on it."""

import json

import pytest

from raynas.errors import RaynasError
from raynas.race.report import RACE_FILE, read_race_file

GOOD = {"experiment_path": "/s/tune/run", "tune_storage": "/s/tune", "name": "run",
        "candidates": [{"key": "mnist5k", "strategy": "ot", "distance": 1.5, "method": "cascade", "rank": 1}],
        "trial_resources": {"cpu": 1.0, "gpu": 0.0}, "samples": 1, "datasets": {"glyph-digits": "ab12"},
        "notes": []}


def test_an_intact_race_file_reads_back(tmp_path):
    (tmp_path / RACE_FILE).write_text(json.dumps(GOOD))
    assert read_race_file(tmp_path) == GOOD


@pytest.mark.parametrize("change, message", [
    (dict(candidates="notalist"), "'candidates' is missing or not a list"),
    (dict(candidates=[1, 2]), "is not a candidate"),
    (dict(candidates=[{"key": "a", "strategy": "ot", "evil": 1}]), "is not a candidate"),
    (dict(candidates=[{"key": ["a"], "strategy": "ot"}]), "is not a candidate"),
    (dict(name=None), "'name' is missing or not a str"),
    (dict(trial_resources={"cpu": -1, "gpu": 0}), "'trial_resources' is not CPUs and GPUs"),
    (dict(trial_resources={"cpu": 1, "gpu": 0, "memory": 5}), "'trial_resources' is not CPUs and GPUs"),
    (dict(samples="1"), "'samples' is missing or not a int"),
    (dict(datasets={"x": 1}), "'datasets' is not a mapping"),
    (dict(notes="x"), "'notes' is not a list"),
])
def test_a_damaged_race_file_is_refused_by_field(tmp_path, change, message):
    (tmp_path / RACE_FILE).write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(RaynasError, match="is damaged") as err:
        read_race_file(tmp_path)
    assert message in str(err.value) and "start a new search" in str(err.value)


@pytest.mark.parametrize("text", ["", "[1, 2]", "{not json", "\udcff"])
def test_a_race_file_that_is_not_an_object_is_refused(tmp_path, text):
    (tmp_path / RACE_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(RaynasError, match="is damaged"):
        read_race_file(tmp_path)
