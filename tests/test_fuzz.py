"""Hostile values for every option: negatives, zero, huge numbers, NaN, empty strings, paths
with spaces and unicode, SQL and path-traversal attempts. Each one is either refused with
one line on stderr and a non-zero exit, or accepted and then exactly what the library gets.

`pretrain` runs for real up to the point where training would start (the store, the
experiment, the run, the checkpoint folder are all made), then a stand-in for the training
records what it was given. The other commands run against a store with no library, where
nothing heavy can start."""

import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from skillforge.app import locations
from skillforge.app import pretrain as pipeline
from skillforge.core.errors import ConfigError, SkillforgeError
from skillforge.core.names import is_valid_name

runner = CliRunner()
HUGE = "99999999999999999999999"
REFUSED = "refused"
TRIED = []  # every hostile input; conftest prints how many at the end of the session


class Accepted(SkillforgeError):
    """Raised by the stand-in for training: the command accepted its input."""


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A working folder three levels deep (so `../../x` stays inside the temp folder), a
    store, and a checkpoint folder, shared by the module."""
    base = tmp_path_factory.mktemp("fuzz")
    cwd = base / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    return {"cwd": cwd, "store": f"sqlite:///{base / 'mlflow.db'}", "ck": str(base / "ck")}


@pytest.fixture
def recorded(place, monkeypatch):
    """Run in the fuzz folder with training replaced by a recorder."""
    monkeypatch.chdir(place["cwd"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    calls = []

    def stand_in(job, callbacks, state, sent_step):
        calls.append(
            {"config": job.config, "checkpoint": job.checkpoint_path,
             "uri": job.client.tracking_uri, "store_timeout": job.store_timeout,
             "run_id": job.run_id}
        )  # fmt: skip
        raise Accepted("accepted")

    monkeypatch.setattr(pipeline, "_run", stand_in)
    return calls


def invoke(args: list[str]):
    TRIED.append(args)
    return runner.invoke(app, args)


def assert_refused(result, args) -> str:
    assert result.exit_code not in (0, None), (args, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    assert not isinstance(result.exception, AssertionError | KeyError | TypeError), args
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    assert "accepted" not in lines[0], (args, "accepted, expected a refusal")
    return lines[0]


def outcome(result, args, calls) -> dict | None:
    """The recorded call if the command was accepted, None if refused (in one line)."""
    if "error: accepted" in result.stderr:
        assert result.stderr.strip() == "error: accepted", (args, result.stderr)
        return calls[-1]
    assert_refused(result, args)
    return None


def pretrain_args(place, *extra: str, env: str = "pendulum") -> list[str]:
    args = ["pretrain", env, "--tracking-uri", place["store"], "--checkpoint-dir", place["ck"]]
    return [*args, *extra]


# -- numbers ---------------------------------------------------------------------------------

INT_OPTIONS = {
    "--skills": "n_skills",
    "--steps": "total_steps",
    "--seed": "seed",
    "--hidden": "hidden",
    "--batch-size": "batch_size",
    "--buffer-size": "buffer_size",
    "--learning-starts": "learning_starts",
    "--checkpoint-every": "checkpoint_every",
    "--threads": "threads",
}
INT_VALUES = ["-1", "0", "-0", "1", "7", HUGE, "nan", "", "1e3", "0x10", "2**8", "٣", " 5"]
NOT_INTEGERS = {"nan", "", "1e3", "0x10", "2**8"}
MUST_REFUSE_INT = {
    "--skills": {"-1", "0", "-0", "1", HUGE},
    "--steps": {"-1", "0", "-0"},
    "--seed": {"-1", HUGE},
    "--hidden": {"-1", "0", "-0", HUGE},
    "--batch-size": {"-1", "0", "-0", HUGE},
    "--buffer-size": {"-1", "0", "-0", "1", "7", "٣", " 5", HUGE},  # < batch size 256
    "--learning-starts": {"-1"},
    "--checkpoint-every": {"-1", "0", "-0"},
    "--threads": {"-1", HUGE},
}


@pytest.mark.parametrize("option", INT_OPTIONS)
def test_integer_options(place, recorded, option):
    for value in INT_VALUES:
        args = pretrain_args(place, option, value)
        result = invoke(args)
        call = outcome(result, args, recorded)
        if value in NOT_INTEGERS or value in MUST_REFUSE_INT[option]:
            assert call is None, (args, "must be refused")
        if call is not None:
            assert getattr(call["config"], INT_OPTIONS[option]) == int(value), args


FLOAT_OPTIONS = {"--lr": "lr", "--gamma": "gamma", "--tau": "tau", "--store-timeout": None}
FLOAT_VALUES = ["-1", "0", "0.5", "1", "nan", "inf", "-inf", "1e308", "1e-320", "1e400", "", "x"]
NON_FINITE = {"nan", "inf", "-inf", "1e400", "", "x"}
MUST_REFUSE_FLOAT = {
    "--lr": {"-1", "0"},
    "--gamma": {"-1", "1", "1e308"},
    "--tau": {"-1", "0", "1e308"},
    "--store-timeout": {"-1", "1e308"},
}


@pytest.mark.parametrize("option", FLOAT_OPTIONS)
def test_number_options(place, recorded, option):
    for value in FLOAT_VALUES:
        args = pretrain_args(place, option, value)
        call = outcome(invoke(args), args, recorded)
        if value in NON_FINITE or value in MUST_REFUSE_FLOAT[option]:
            assert call is None, (args, "must be refused")
        if call is not None:
            field = FLOAT_OPTIONS[option]
            got = call["store_timeout"] if field is None else getattr(call["config"], field)
            assert got == float(value), args


ALPHAS = {
    "-1": REFUSED, "nan": REFUSED, "inf": REFUSED, "1e400": REFUSED, "": REFUSED,
    "0x1": REFUSED, "auto'; drop": REFUSED, "auto": None, "AUTO": None, " auto ": None,
    "0": 0.0, "0.2": 0.2, "1e-3": 1e-3,
}  # fmt: skip


def test_alpha(place, recorded):
    for value, expected in ALPHAS.items():
        args = pretrain_args(place, "--alpha", value)
        call = outcome(invoke(args), args, recorded)
        if expected is REFUSED:
            assert call is None, args
        else:
            assert call is not None and call["config"].alpha == expected, args


# -- names, words, paths --------------------------------------------------------------------

NAMES = {
    "../../x": REFUSED, "..": REFUSED, "a/b": REFUSED, "/etc": REFUSED, ".hidden": REFUSED,
    "a..b": REFUSED, "a'; drop table runs; --": REFUSED, "a b": REFUSED, " ": REFUSED,
    "x" * 65: REFUSED, "ünïcødé": REFUSED, "-x": REFUSED, "a\\b": REFUSED, "a\nb": REFUSED,
    "": REFUSED,  # empty is not "the default name": leave --name out for that
    "fuzz-ok_1.v2": "fuzz-ok_1.v2", "CON": "CON",
}  # fmt: skip


def test_library_names_cannot_be_paths_or_sql(place, recorded):
    for value, expected in NAMES.items():
        args = pretrain_args(place, "--name", value)
        call = outcome(invoke(args), args, recorded)
        if expected is REFUSED:
            assert call is None, args
            continue
        assert call is not None and call["config"].name == expected, args
        checkpoint = Path(call["checkpoint"])
        assert checkpoint == Path(place["ck"]).resolve() / expected / "checkpoint.pt"
    args = pretrain_args(place)  # no --name: the default name
    call = outcome(invoke(args), args, recorded)
    assert re.fullmatch(r"pendulum-20sk-[0-9a-f]{6}", call["config"].name)


def test_devices_and_environments(place, recorded):
    for device in ("", "tpu", "CPU", "cpu;rm -rf /", "../../x", "cuda:99"):
        args = pretrain_args(place, "--device", device)
        assert outcome(invoke(args), args, recorded) is None, args
    for env in ("", "../../x", "a'; drop table runs", "CartPole-v1", "antigravity:Fly-v0",
                "Pendulum-v1 ", "ünï", "x" * 5000):  # fmt: skip
        args = pretrain_args(place, env=env)
        assert outcome(invoke(args), args, recorded) is None, args
    args = pretrain_args(place, env="PENDULUM")
    assert outcome(invoke(args), args, recorded)["config"].env_id == "Pendulum-v1"


EXPERIMENTS = {
    "": REFUSED, " ": REFUSED, "x" * 300: REFUSED, "tab\there": REFUSED,
    "../../x": "../../x", "a'; drop table runs; --": "a'; drop table runs; --",
    "ünïcødé experiment": "ünïcødé experiment",
}  # fmt: skip


def test_experiment_names(place, recorded):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(place["store"], registry_uri=place["store"])
    for value, expected in EXPERIMENTS.items():
        args = pretrain_args(place, "--experiment", value)
        call = outcome(invoke(args), args, recorded)
        if expected is REFUSED:
            assert call is None, args
            continue
        run = client.get_run(call["run_id"])
        assert client.get_experiment(run.info.experiment_id).name == expected
    assert client.search_experiments()  # the store is intact after the SQL-looking names


def test_checkpoint_folders(place, recorded):
    cwd = place["cwd"]
    for value in ("", "/proc/no-such/dir", "/dev/null", "a\x00b"):
        args = pretrain_args(place) + ["--checkpoint-dir", value]
        assert outcome(invoke(args), args, recorded) is None, args
    for value, folder in {
        "dir with space/ünïcødé": cwd / "dir with space/ünïcødé",
        "../../x": cwd.parent.parent / "x",
        "./~x": cwd / "~x",
        "~nobody-such-user/x": cwd / "~nobody-such-user/x",  # as a shell leaves it
    }.items():
        args = pretrain_args(place) + ["--checkpoint-dir", value]
        call = outcome(invoke(args), args, recorded)
        assert call is not None, args
        checkpoint = Path(call["checkpoint"])
        assert checkpoint.parent.parent == folder.resolve(), (value, checkpoint)
        assert checkpoint.parent.name == call["config"].name


def test_tracking_uris(place, recorded, tmp_path):
    for value in (
        "http://127.0.0.1:1",
        "ftp://x",
        "sqlite:////proc/no-such/dir/mlflow.db",
        "file:///tmp/a-file-store",
        "postgresql://u@127.0.0.1:1/db",
        "http://[::1",
        "sqlite:///",
        "sqlite://",
        "sqlite:///:memory:",
    ):
        args = ["pretrain", "pendulum", "--tracking-uri", value, "--checkpoint-dir", place["ck"]]
        assert outcome(invoke(args), args, recorded) is None, args
    unusual = tmp_path / "dir with space" / "ünï; drop table runs.db"
    args = ["pretrain", "pendulum", "--tracking-uri", str(unusual), "--checkpoint-dir", place["ck"]]
    call = outcome(invoke(args), args, recorded)
    assert call is not None and call["uri"] == f"sqlite:///{unusual}"
    assert unusual.is_file()


def test_resume_references(place, recorded):
    for value in ("", " ", "../../x", "a'; drop table runs; --", "x" * 5000, "ünï"):
        args = ["pretrain", "--resume", value, "--tracking-uri", place["store"]]
        assert outcome(invoke(args), args, recorded) is None, args
    for steps in ("-1", "0", "nan", ""):
        args = [
            "pretrain",
            "--resume",
            "latest",
            "--steps",
            steps,
            "--tracking-uri",
            place["store"],
        ]
        assert outcome(invoke(args), args, recorded) is None, args


# -- the other commands, on a store with no library: nothing heavy can start ---------------

HOSTILE_WORDS = ["../../x", "a'; drop table runs; --", "", "x" * 3000, "ünï cødé", "-1", "nan"]
HOSTILE_STORES = [  # none of them creates a store (a new sqlite store costs ~5 s)
    "http://127.0.0.1:1",
    "ftp://../../x",
    "sqlite:////proc/no-such/mlflow.db",
    "sqlite:///",
    "file:///tmp/../../x",
    "postgresql://a'; drop table runs; --@127.0.0.1:1/x",
    "http://[::1",
]


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory):
    """A store with no library (the other commands only read it)."""
    from skillforge.store import tracking

    uri = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'mlflow.db'}"
    tracking.connect(uri)
    return uri


def other_commands():
    """(command words, option) for every command but pretrain (its own tests) and ui (a
    server: its bind address is tested below), found in the app itself."""
    from typer.main import get_command

    found = []

    def walk(command, words):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*words, name])
            return
        if words[0] in ("pretrain", "ui"):
            return
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag and param.name != "help":
                found.append((tuple(words), param.opts[0]))
            if param.param_type_name == "argument":
                found.append((tuple(words), None))
        found.append((tuple(words), "--tracking-uri"))

    walk(get_command(app), [])
    return sorted(set(found), key=str)


@pytest.mark.parametrize("words, option", other_commands())
def test_other_commands_refuse_hostile_values_in_one_line(
    empty_store, tmp_path, monkeypatch, words, option
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = ["--tracking-uri", empty_store]
    values = HOSTILE_STORES if option == "--tracking-uri" else HOSTILE_WORDS
    for value in values:
        if option is None:
            args = [*words, value, *store]
        elif option == "--tracking-uri":
            args = [*words, "--tracking-uri", value]
        else:
            args = [*words, option, value, *store]
        result = invoke(args)
        if result.exit_code == 0:  # accepted: only a listing of the empty store may be
            assert "No " in result.stdout or not result.stdout.strip(), (args, result.output)
            continue
        assert_refused(result, args)


def test_servers_bind_to_loopback_unless_told_otherwise():
    from typer.main import get_command

    hosts = []

    def walk(command):
        for sub in getattr(command, "commands", {}).values():
            walk(sub)
        for param in getattr(command, "params", []):
            if param.param_type_name == "option" and "--host" in param.opts:
                hosts.append(param.default)

    walk(get_command(app))
    assert hosts, "no command with --host (skillforge ui should have one)"
    assert all(host == "127.0.0.1" for host in hosts), hosts


# -- properties (hypothesis) -----------------------------------------------------------------


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=80))
def test_any_name_is_refused_or_stays_inside_the_checkpoint_folder(tmp_path_factory, name):
    root = locations.checkpoint_root(tmp_path_factory.getbasetemp() / "names")
    try:
        path = locations.checkpoint_path_for(root, name)
    except ConfigError:
        assert not is_valid_name(name) or "/" in name
        return
    assert path.parent.parent == root and path.parent.name == name


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    skills=st.integers(min_value=-(2**70), max_value=2**70),
    hidden=st.integers(min_value=-10, max_value=10**6),
    lr=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_numbers_are_refused_or_passed_on_exactly(place, recorded, skills, hidden, lr):
    args = pretrain_args(place, "--skills", str(skills), "--hidden", str(hidden), "--lr", str(lr))
    call = outcome(invoke(args), args, recorded)
    if call is not None:
        config = call["config"]
        assert (config.n_skills, config.hidden, config.lr) == (skills, hidden, lr)
        assert skills >= 2 and 1 <= hidden <= 8192 and math.isfinite(lr) and lr > 0
