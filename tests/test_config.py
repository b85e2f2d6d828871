import pytest

from skillforge.core.config import PretrainConfig, parse_alpha
from skillforge.core.downstream_config import FinetuneConfig, HierarchicalConfig
from skillforge.core.errors import ConfigError
from skillforge.core.names import is_valid_name


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_skills": 1}, "--skills"),
        ({"total_steps": 0}, "--steps"),
        ({"hidden": 0}, "--hidden"),
        ({"batch_size": -1}, "--batch-size"),
        ({"lr": 0.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"alpha": -0.1}, "--alpha"),
        ({"gamma": 1.0}, "--gamma"),
        ({"tau": 0.0}, "--tau"),
        ({"buffer_size": 10, "batch_size": 32}, "--buffer-size"),
        ({"learning_starts": -5}, "--learning-starts"),
        ({"device": "tpu"}, "--device"),
        ({"checkpoint_every": 0}, "--checkpoint-every"),
        ({"name": "../../x"}, "--name"),
        ({"name": "a'; drop table runs"}, "--name"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_values_are_refused_naming_the_option(changes, message):
    with pytest.raises(ConfigError, match=message):
        PretrainConfig(env_id="Hopper-v5", **changes)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: FinetuneConfig(updates_per_step=0), "--updates-per-step must be in"),
        (lambda: HierarchicalConfig(sac_updates_per_step=float("nan")), "--sac-updates-per-step"),
        (lambda: PretrainConfig(env_id="Hopper-v5", updates_per_step=65), "--updates-per-step"),
    ],
)
def test_a_gradient_step_rate_outside_0_to_64_is_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_fine_tuning_at_a_quarter_update_per_step_holds_its_policy_four_times_as_long():
    """200 critic-only updates at 0.25 per step take 800 steps, after 100 warm-up steps: the
    policy first moves at step 901."""
    FinetuneConfig(total_steps=1_000, learning_starts=200, updates_per_step=0.25)
    with pytest.raises(ConfigError, match="first moves \\(step 1,101.*--learning-starts 62,"):
        FinetuneConfig(total_steps=1_000, learning_starts=250, updates_per_step=0.25)


def test_defaults_follow_the_paper():
    config = PretrainConfig(env_id="Hopper-v5")
    assert (config.n_skills, config.hidden, config.batch_size) == (20, 300, 256)
    assert (config.lr, config.alpha, config.gamma, config.tau) == (3e-4, 0.1, 0.99, 0.005)
    assert config.total_steps == config.buffer_size == 1_000_000


def test_round_trip_through_dict_and_params():
    config = PretrainConfig(env_id="Hopper-v5", alpha=None, name="lib-1")
    assert PretrainConfig.from_dict(config.to_dict()) == config
    assert config.to_params()["alpha"] == "auto"


def test_parse_alpha():
    assert parse_alpha("auto") is None
    assert parse_alpha("0.2") == 0.2
    for bad in ("x", "-1", "nan", "inf"):
        with pytest.raises(ConfigError):
            parse_alpha(bad)


@pytest.mark.parametrize("name", ["hopper-20sk-abc", "run_1.2"])
def test_valid_names(name):
    assert is_valid_name(name)


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "x" * 65, "é", "a b", "a..b"])
def test_invalid_names(name):
    assert not is_valid_name(name)
