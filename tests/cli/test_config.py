"""Configuration precedence: defaults < TOML file < RAMNET_* environment < overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

import ramnet
from ramnet.config import Settings, default_config_path, load_settings


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose user config folder is empty (so no stray user file is read)."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path), **extra}


def _toml(tmp_path: Path, text: str, name: str = "conf.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(env=_env(tmp_path))
    assert isinstance(settings, Settings)
    assert settings.backend == "auto"
    assert settings.threads is None


def test_precedence_chain(tmp_path: Path) -> None:
    conf = _toml(tmp_path, 'backend = "numba"\nthreads = 3\n')
    s = load_settings(conf, env=_env(tmp_path))
    assert (s.backend, s.threads) == ("numba", 3)
    s = load_settings(conf, env=_env(tmp_path, RAMNET_BACKEND="numpy"))
    assert (s.backend, s.threads) == ("numpy", 3)  # env beats the file, key by key
    s = load_settings(conf, env=_env(tmp_path, RAMNET_BACKEND="numpy", RAMNET_THREADS="2"))
    assert (s.backend, s.threads) == ("numpy", 2)
    s = load_settings(
        conf,
        overrides={"backend": "c", "threads": 1},
        env=_env(tmp_path, RAMNET_BACKEND="numpy", RAMNET_THREADS="2"),
    )
    assert (s.backend, s.threads) == ("c", 1)  # flags beat everything
    # None overrides (flags not given) leave the lower layers alone.
    s = load_settings(
        conf, overrides={"backend": None, "threads": None}, env=_env(tmp_path, RAMNET_THREADS="2")
    )
    assert (s.backend, s.threads) == ("numba", 2)


def test_file_from_ramnet_config_and_default_location(tmp_path: Path) -> None:
    conf = _toml(tmp_path, "threads = 4\n")
    assert load_settings(env=_env(tmp_path, RAMNET_CONFIG=str(conf))).threads == 4
    user = tmp_path / "xdg" / "ramnet" / "config.toml"
    assert default_config_path(_env(tmp_path)) == user
    user.parent.mkdir(parents=True)
    user.write_text('backend = "numpy"\n', encoding="utf-8")
    assert load_settings(env=_env(tmp_path)).backend == "numpy"
    # An explicit file wins over the default location.
    assert load_settings(conf, env=_env(tmp_path)).backend == "auto"


def test_empty_env_values_are_ignored(tmp_path: Path) -> None:
    s = load_settings(env=_env(tmp_path, RAMNET_BACKEND="", RAMNET_THREADS=""))
    assert (s.backend, s.threads) == ("auto", None)


@pytest.mark.parametrize(
    "text",
    [
        "backend = [\n",  # invalid TOML
        "threads = \n",
        'colour = "blue"\n',  # unknown key
        'backend = "gpu"\n',
        "threads = 0\n",
        "threads = -2\n",
        "threads = 1.5\n",
        "threads = true\n",
        'threads = "many"\n',
        "backend = 3\n",
    ],
)
def test_bad_file_values(tmp_path: Path, text: str) -> None:
    conf = _toml(tmp_path, text)
    with pytest.raises(ramnet.ConfigError):
        load_settings(conf, env=_env(tmp_path))


def test_non_utf8_file(tmp_path: Path) -> None:
    conf = tmp_path / "conf.toml"
    conf.write_bytes(b'backend = "\xff\xfe"\n')
    with pytest.raises(ramnet.ConfigError):
        load_settings(conf, env=_env(tmp_path))


@pytest.mark.parametrize(
    "env",
    [
        {"RAMNET_BACKEND": "gpu"},
        {"RAMNET_THREADS": "0"},
        {"RAMNET_THREADS": "-1"},
        {"RAMNET_THREADS": "two"},
        {"RAMNET_THREADS": "1.5"},
    ],
)
def test_bad_env_values(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ramnet.ConfigError) as info:
        load_settings(env=_env(tmp_path, **env))
    assert next(iter(env)) in str(info.value)  # the message names the variable


@pytest.mark.parametrize(
    "overrides",
    [{"backend": "gpu"}, {"threads": 0}, {"threads": -3}, {"threads": True}, {"threads": 2.0}],
)
def test_bad_overrides(tmp_path: Path, overrides: dict[str, object]) -> None:
    with pytest.raises(ramnet.ConfigError):
        load_settings(overrides=overrides, env=_env(tmp_path))


def test_explicit_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ramnet.ConfigError):
        load_settings(tmp_path / "nope.toml", env=_env(tmp_path))
    with pytest.raises(ramnet.ConfigError):
        load_settings(env=_env(tmp_path, RAMNET_CONFIG=str(tmp_path / "nope.toml")))
    with pytest.raises(ramnet.ConfigError):
        load_settings(tmp_path, env=_env(tmp_path))  # a folder is not a file


def test_config_error_is_invalid_input() -> None:
    assert issubclass(ramnet.ConfigError, ramnet.InvalidInputError)


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load_settings(env=_env(tmp_path))
    with pytest.raises(AttributeError):
        s.backend = "c"  # type: ignore[misc]


def test_mesh_settings_from_env_and_toml(tmp_path: Path) -> None:
    from ramnet.config import load_settings

    env = {
        "RAMNET_COORDINATOR": "http://127.0.0.1:9100/",
        "STAKED_BOND": "50",
        "RAMNET_MODE": "worker",
        "RAMNET_PAYOUT_ADDRESS": "acct-1",
    }
    s = load_settings(env=env)
    assert (s.coordinator, s.bond, s.mode, s.payout_address) == (
        "http://127.0.0.1:9100",
        50,
        "worker",
        "acct-1",
    )
    toml = tmp_path / "c.toml"
    toml.write_text('coordinator = "http://10.0.0.1:9000"\nbond = 7\n')
    s = load_settings(toml, env={})
    assert (s.coordinator, s.bond) == ("http://10.0.0.1:9000", 7)
    assert load_settings(toml, {"bond": 9}, env={"STAKED_BOND": "8"}).bond == 9


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("RAMNET_COORDINATOR", "ftp://x"),
        ("STAKED_BOND", "-1"),
        ("STAKED_BOND", "1.5"),
        ("RAMNET_MODE", "daemon"),
        ("RAMNET_PAYOUT_ADDRESS", "a\nb"),
    ],
)
def test_bad_mesh_settings_refused(var: str, value: str) -> None:
    from ramnet.config import load_settings

    with pytest.raises(ramnet.ConfigError):
        load_settings(env={var: value})
