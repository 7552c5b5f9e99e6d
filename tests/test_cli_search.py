"""`raynas search` options: configs from flags and files, bad values, resume conflicts (no trial runs)."""

import json

import pytest

from raynas.cli import build_parser, main
from raynas.cli.search import experiment_from_args
from raynas.experiment import ExperimentConfig, write_config
from raynas.race.config import RaceConfig
from raynas.race.report import write_race_file
from raynas.search.config import SearchConfig


def config_of(*argv) -> ExperimentConfig:
    return experiment_from_args(build_parser().parse_args(["search", *map(str, argv)]))


def test_flags_fill_the_dataclasses_and_defaults_come_from_them():
    config = config_of("digits")
    assert config == ExperimentConfig(SearchConfig("digits"), RaceConfig())  # every default is the dataclass's
    config = config_of("digits", "--epochs", "3", "--arch-lr", "0.01", "--ops", "none,skip_connect",
                       "--no-augment", "--race", "2", "--baseline", "--no-early-stop", "--gpus-per-trial", "0.5",
                       "--retrain-epochs", "7", "--publish")
    s, r = config.search, config.race
    assert (s.epochs, s.a_lr, s.ops, s.augment) == (3, 0.01, ("none", "skip_connect"), False)
    assert (r.race, r.baseline, r.early_stop, r.gpus_per_trial) == (2, True, False, 0.5)
    assert config.retrain.epochs == 7 and config.publish  # --retrain-epochs implies --retrain


def test_a_config_file_sets_any_field_and_flags_override_it(tmp_path):
    path = tmp_path / "race.yaml"
    path.write_text("search:\n  dataset: textures\n  epochs: 6\n  w_momentum: 0.8\nrace:\n  race: 4\n"
                    "retrain:\n  channels: 8\npublish: true\n")
    config = config_of("--config", path, "--epochs", "2")
    assert (config.search.dataset, config.search.epochs, config.search.w_momentum) == ("textures", 2, 0.8)
    assert config.race.race == 4 and config.retrain.channels == 8 and config.publish
    assert config_of("digits", "--config", path).search.dataset == "digits"  # the target given wins
    # a run's config.json is a config file too
    write_config(tmp_path, config)
    assert config_of("--config", tmp_path / "config.json") == config


@pytest.mark.parametrize("content, message", [
    ("search: [1, 2", "is not valid YAML"),
    ("- a list", "must hold a mapping"),
    ("search:\n  dataset: digits\ncolour: red\n", "unknown key(s) colour"),
    ("search:\n  dataset: digits\n  epoch: 3\n", "unknown search config field(s): epoch"),
    ("search:\n  dataset: digits\n  epochs: three\n", "epochs (--epochs) must be an integer"),
    ("search:\n  dataset: digits\nrace:\n  race: 0\n", "race (--race) must be >= 1"),
])
def test_bad_config_files_are_refused_with_the_reason(tmp_path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["search", "--config", str(path), "--home", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--w-lr", "nan"], "w_lr (--w-lr) must be a finite number, got nan"),
    (["--alpha-temperature", "nan"], "alpha_temperature (--alpha-temperature) must be a finite number"),
    (["--arch-lr", "inf"], "a_lr (--arch-lr) must be a finite number"),
    (["--probe-min-cut", "1.5"], "probe_min_cut (--probe-min-cut) must be >= 0 and <= 1, got 1.5"),
    (["--w-lr", "-1"], "w_lr (--w-lr) must be > 0"),
    (["--image-size", "20000"], "image_size (--image-size) must be >= 8 and <= 512, got 20000"),
    (["--channels", "100000"], "channels (--channels) must be >= 2 and <= 256, got 100000"),
    (["--retrain-epochs", "0"], "epochs (--retrain-epochs) must be >= 1"),
    (["--seed", "-1"], "seed (--seed) must be >= 0"),
    (["--device", "bogus"], "unknown device 'bogus'"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--cpus-per-trial", "0"], "cpus_per_trial (--cpus-per-trial) must be > 0"),
])
def test_bad_values_fail_before_anything_runs(suite_home, tmp_path, capsys, argv, message):
    assert main(["search", "digits", "--preset", "tiny", *argv, "--home", str(suite_home),
                 "--storage", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tune").exists()


def test_unparseable_numbers_are_argument_errors(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["search", "digits", "--epochs", "three"])
    assert exit_.value.code == 2 and "--epochs takes an integer, got 'three'" in capsys.readouterr().err


def test_resume_refuses_a_target_or_options_that_change_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_config(run, ExperimentConfig(SearchConfig("digits")))
    write_race_file(run, {"experiment_path": str(tmp_path / "tune" / "run")})
    assert main(["search", "textures", "--resume", str(run), "--home", str(tmp_path)]) == 1
    assert "the run searches 'digits', not 'textures'" in capsys.readouterr().err
    assert main(["search", "--resume", str(run), "--epochs", "5", "--publish", "--home", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "these options would change them: --epochs, --publish" in err
    (run / "race.json").write_text("{not json")
    assert main(["search", "--resume", str(run), "--home", str(tmp_path)]) == 1
    assert "race.json is damaged" in capsys.readouterr().err
    (run / "config.json").write_text(json.dumps({"search": {"dataset": "digits", "epochs": -3}}))
    assert main(["search", "--resume", str(run), "--home", str(tmp_path)]) == 1
    assert "epochs (--epochs) must be >= 1" in capsys.readouterr().err
