"""Pretraining jobs: planned and validated up front; in parallel, one failure does not lose the others."""

import pytest

from raynas.errors import RaynasError
from raynas.search.config import SearchConfig
from raynas.workspace import Workspace
from raynas.zoo.build import PretrainJob, plan_jobs, run_jobs
from raynas.zoo.store import Zoo

QUICK = dict(preset="tiny", epochs=1, max_steps_per_epoch=2)


def test_plan_jobs_names_and_configures_each_source(suite_home, tmp_path):
    ws = Workspace.open(suite_home, str(tmp_path))
    jobs, current = plan_jobs(["digits", "textures"], SearchConfig(dataset="x", **QUICK), ws)
    assert [(j.name, j.config.dataset, j.config.multi, j.config.transfer) for j in jobs] == [
        ("digits", "digits", (), "scratch"), ("textures", "textures", (), "scratch")] and current == []
    [multi], _ = plan_jobs(["digits", "textures"], SearchConfig(dataset="x", **QUICK), ws, multi="mix")
    assert (multi.name, multi.config.dataset, multi.config.multi) == ("mix", "mix", ("digits", "textures"))


def test_a_rerun_pretrains_only_what_is_missing(suite_home, tmp_path):
    ws = Workspace.open(suite_home, str(tmp_path))
    jobs, _ = plan_jobs(["digits", "textures"], SearchConfig(dataset="x", **QUICK), ws)
    run_jobs(jobs[:1], parallel=False, verbose=False)  # as if the build was killed after the first source
    again, current = plan_jobs(["digits", "textures"], SearchConfig(dataset="x", **QUICK), ws, rebuild=False)
    assert [j.name for j in again] == ["textures"] and current == ["digits"]
    other, current = plan_jobs(["digits"], SearchConfig(dataset="x", **{**QUICK, "seed": 1}), ws, rebuild=False)
    assert [j.name for j in other] == ["digits"] and current == []  # another config: pretrained again


@pytest.mark.parametrize("edit, current", [
    (lambda search: search.pop("head"), True),  # built before the field existed: it counts at its default
    (lambda search: search.update(head="probe"), False),
    (lambda search: search.update(future_field=1), False),  # written by a newer version: pretrained again
])
def test_an_entry_is_current_by_its_settings_with_missing_fields_at_their_defaults(suite_home, tmp_path, edit,
                                                                                    current):
    import json

    ws = Workspace.open(suite_home, str(tmp_path))
    jobs, _ = plan_jobs(["digits"], SearchConfig(dataset="x", **QUICK), ws)
    run_jobs(jobs, parallel=False, verbose=False)
    [path] = (tmp_path / "zoo" / "digits").glob("*/manifest.json")
    manifest = json.loads(path.read_text())
    edit(manifest["search"])
    path.write_text(json.dumps(manifest))
    again, kept = plan_jobs(["digits"], SearchConfig(dataset="x", **QUICK), ws, rebuild=False)
    assert (kept == ["digits"]) is current and len(again) == (0 if current else 1)


def test_a_failing_parallel_job_is_reported_after_the_others_finish(ray_session, suite_home, tmp_path):
    ws = Workspace.open(suite_home, str(tmp_path))
    [good], _ = plan_jobs(["digits"], SearchConfig(dataset="x", **QUICK), ws)
    bad = PretrainJob(good.config.replace(dataset="vanished"), good.home, good.storage)  # e.g. deleted after planning
    with pytest.raises(RaynasError, match="pretraining failed for vanished; published: digits; first error: "
                                          "dataset 'vanished' not found") as err:
        run_jobs([bad, good], parallel=True, verbose=False)
    assert "raynas data import" in str(err.value)  # the cause's fix comes along
    assert Zoo(tmp_path / "zoo").names() == ["digits"]
