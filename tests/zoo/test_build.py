"""Pretraining jobs: planned and validated up front; in parallel, one failure does not lose the others."""

import pytest

from raynas.errors import RaynasError
from raynas.home import Home
from raynas.search.config import SearchConfig
from raynas.zoo.build import PretrainJob, plan_jobs, run_jobs
from raynas.zoo.store import Zoo

QUICK = dict(preset="tiny", epochs=1, max_steps_per_epoch=2)


def test_plan_jobs_names_and_configures_each_source(suite_home, tmp_path):
    home = Home.resolve(suite_home)
    zoo, emb = home.shared(str(tmp_path))
    jobs = plan_jobs(["digits", "textures"], SearchConfig(dataset="x", **QUICK), home, zoo, emb, "pixels")
    assert [(j.name, j.config.dataset, j.config.multi) for j in jobs] == [("digits", "digits", ()),
                                                                          ("textures", "textures", ())]
    [multi] = plan_jobs(["digits", "textures"], SearchConfig(dataset="x", **QUICK), home, zoo, emb, "pixels",
                        multi="mix")
    assert (multi.name, multi.config.dataset, multi.config.multi) == ("mix", "mix", ("digits", "textures"))


def test_a_failing_parallel_job_is_reported_after_the_others_finish(ray_session, suite_home, tmp_path):
    home = Home.resolve(suite_home)
    zoo, emb = home.shared(str(tmp_path))
    [good] = plan_jobs(["digits"], SearchConfig(dataset="x", **QUICK), home, zoo, emb, "pixels")
    bad = PretrainJob(good.config.replace(dataset="vanished"), good.home, good.zoo, good.embeddings, good.encoder,
                      "vanished")  # e.g. a dataset deleted after planning
    with pytest.raises(RaynasError, match="pretraining failed for vanished; published: digits; first error: "
                                          "dataset 'vanished' not found") as err:
        run_jobs([bad, good], parallel=True, verbose=False)
    assert "raynas data import" in str(err.value)  # the cause's fix comes along
    assert Zoo(zoo).names() == ["digits"]
