import json

import pytest

from raynas.cli import main
from raynas.data import DatasetStore
from raynas.errors import RaynasError
from raynas.search.retrain import RetrainConfig, retrain, retrain_epochs
from raynas.space.genotype import Genotype

GENOTYPE = Genotype(normal=(("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("dil_conv_3x3", 2)),
                    reduce=(("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 2), ("sep_conv_3x3", 1)),
                    nodes=2)


def test_retrain_reports_test_accuracy(suite_home, tmp_path):
    cfg = RetrainConfig(dataset="lfw-faces", epochs=1, image_size=8, channels=4, cells=3, batch_size=32)
    result = retrain(GENOTYPE, cfg, DatasetStore(suite_home), tmp_path, verbose=False)
    assert 0.0 <= result["test_acc"] <= 1.0 and result["chance_acc"] == 0.5 and result["params"] > 0
    assert json.loads((tmp_path / "retrain.json").read_text())["genotype"] == GENOTYPE.to_json()


@pytest.mark.parametrize("epochs, max_steps, min_steps, batches, expected", [
    (10, None, None, 3, 10),  # no step budget: the epochs
    (10, None, 1000, 3, 334),  # a small set repeats epochs until it has trained 1000 steps
    (10, 100, 1000, 59, 17),  # ceil(1000 / 59)
    (10, 20, 1000, 59, 50),  # the cap per epoch counts
    (10, 100, 50, 59, 10),  # never fewer than the epochs asked for
])
def test_retrain_epochs_meet_the_step_budget(epochs, max_steps, min_steps, batches, expected):
    cfg = RetrainConfig(dataset="digits", epochs=epochs, max_steps_per_epoch=max_steps, min_steps=min_steps)
    assert retrain_epochs(cfg, batches) == expected


def test_retrain_trains_at_least_min_steps(suite_home):
    # lfw-faces: 150 train+val images, 5 batches of 32 an epoch
    cfg = RetrainConfig(dataset="lfw-faces", epochs=1, image_size=8, channels=4, cells=3, batch_size=32,
                        min_steps=12)
    result = retrain(GENOTYPE, cfg, DatasetStore(suite_home), verbose=False)
    assert len(result["history"]) == 3 and result["config"]["min_steps"] == 12


def test_retrain_config_validation():
    with pytest.raises(RaynasError):
        RetrainConfig(dataset="digits", drop_path=1.0)
    with pytest.raises(RaynasError):
        RetrainConfig(dataset="digits", image_size=10)
    with pytest.raises(RaynasError, match="min_steps"):
        RetrainConfig(dataset="digits", min_steps=0)


def test_cli_search_then_retrain(suite_home, capsys):
    rc = main(["search", "digits", "--preset", "tiny", "--epochs", "1", "--max-steps", "2", "--home",
               str(suite_home), "--json"])
    assert rc == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "finished" and len(answer["genotype"]["normal"]) == 6
    rc = main(["retrain", answer["run_dir"], "--epochs", "1", "--channels", "4", "--cells", "3", "--home",
               str(suite_home), "--json"])
    assert rc == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["test_acc"] <= 1.0


@pytest.mark.parametrize("argv, message", [
    (["search", "digits", "--algo", "enas"], "unknown search algorithm 'enas'"),
    (["search", "missing-set", "--preset", "tiny"], "dataset 'missing-set' not found"),
    (["search", "digits", "--preset", "tiny", "--nodes", "1"], "nodes (--nodes) must be >= 2"),
    (["search", "--resume", "/nonexistent/run"], "config.json not found"),
    (["retrain", "/nonexistent/genotype.json", "--dataset", "digits"], "not found"),
])
def test_cli_errors_exit_nonzero_with_a_message(suite_home, capsys, argv, message):
    assert main(argv + ["--home", str(suite_home)]) == 1
    assert message in capsys.readouterr().err
    assert not list((suite_home / "runs").glob("*")) or all(
        (p / "result.json").exists() for p in (suite_home / "runs").iterdir())
