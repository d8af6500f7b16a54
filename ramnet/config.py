"""Configuration: the one module that reads the environment.

Settings are resolved once, in this order (later wins): built-in defaults < the TOML file <
``RAMNET_*`` environment variables < command-line flags. The TOML file is ``--config PATH``, else
``$RAMNET_CONFIG``, else ``ramnet/config.toml`` in the user's config folder (``$XDG_CONFIG_HOME``
or ``~/.config``) if it exists. Its keys are the field names of ``Settings``, at the top level.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ramnet._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Settings:
    """Resolved settings.

    Attributes:
        backend: ``auto``, ``c``, ``numba`` or ``numpy`` (env ``RAMNET_BACKEND``).
        threads: Worker threads, None for every core (env ``RAMNET_THREADS``).
        key_file: The node's Ed25519 key file (env ``RAMNET_KEY_FILE``); None for the default
            location, ``default_key_path()``.
        mode: What ``ramnet`` runs as when a command leaves it open: ``sovereign``, ``mesh`` or
            ``worker`` (env ``RAMNET_MODE``).
        coordinator: The mesh coordinator's URL (env ``RAMNET_COORDINATOR``).
        ca_file: A PEM file of CA certificates that an https coordinator's certificate is checked
            against instead of the system's trust store (env ``RAMNET_CA_FILE``); None: the
            system's store.
        payout_address: Where a worker is paid (env ``RAMNET_PAYOUT_ADDRESS``).
        bond: A worker's staked bond, in ledger units (env ``STAKED_BOND``).
    """

    backend: str = "auto"
    threads: int | None = None
    key_file: str | None = None
    mode: str = "sovereign"
    coordinator: str = "http://127.0.0.1:9000"
    ca_file: str | None = None
    payout_address: str | None = None
    bond: int = 100


_ENV = {
    "backend": "RAMNET_BACKEND",
    "threads": "RAMNET_THREADS",
    "key_file": "RAMNET_KEY_FILE",
    "mode": "RAMNET_MODE",
    "coordinator": "RAMNET_COORDINATOR",
    "ca_file": "RAMNET_CA_FILE",
    "payout_address": "RAMNET_PAYOUT_ADDRESS",
    "bond": "STAKED_BOND",
}


def _coerce(name: str, value: Any, source: str) -> Any:
    if name == "threads":
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{source}: threads must be a positive integer, got {value!r}"
            ) from None
        if number < 1 or isinstance(value, (bool, float)):
            raise ConfigError(f"{source}: threads must be a positive integer, got {value!r}")
        return number
    if name == "mode":
        if value not in ("sovereign", "mesh", "worker"):
            raise ConfigError(f"{source}: mode must be sovereign, mesh or worker, got {value!r}")
        return value
    if name == "coordinator":
        text = str(value)
        if not text.startswith(("http://", "https://")):
            raise ConfigError(f"{source}: the coordinator must be an http(s) URL, got {value!r}")
        return text.rstrip("/")
    if name == "payout_address":
        text = str(value)
        if not text or len(text) > 512 or any(c in text for c in "\r\n"):
            raise ConfigError(f"{source}: the payout address must be one line of 1-512 chars")
        return text
    if name == "bond":
        try:
            amount = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: the bond must be a whole number, got {value!r}") from None
        if amount < 0 or isinstance(value, (bool, float)):
            raise ConfigError(f"{source}: the bond must be a whole number >= 0, got {value!r}")
        return amount
    if name in ("key_file", "ca_file"):
        if not isinstance(value, (str, os.PathLike)) or not str(value):
            raise ConfigError(f"{source}: {name} must be a path, got {value!r}")
        return str(value)
    if name == "backend":
        if value not in ("auto", "c", "numba", "numpy"):
            raise ConfigError(f"{source}: backend must be auto, c, numba or numpy, got {value!r}")
        return value
    return value


def user_config_dir(env: dict[str, str] | None = None) -> Path:
    """Return RAMNET's folder in the platform's user configuration folder.

    Linux and other Unix: ``$XDG_CONFIG_HOME/ramnet`` or ``~/.config/ramnet``; macOS:
    ``~/Library/Application Support/ramnet``; Windows: ``%APPDATA%\\ramnet``.
    """
    env = dict(os.environ) if env is None else env
    if sys.platform == "win32" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "ramnet"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "ramnet"
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ramnet"


def user_data_dir(env: dict[str, str] | None = None) -> Path:
    """Return RAMNET's folder for data it keeps (a coordinator's state, by default).

    ``$XDG_DATA_HOME/ramnet`` or ``~/.local/share/ramnet`` on Unix; macOS and Windows as
    ``user_config_dir``.
    """
    env = dict(os.environ) if env is None else env
    if sys.platform in ("win32", "darwin"):
        return user_config_dir(env)
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ramnet"


def user_runtime_dir(env: dict[str, str] | None = None) -> str | None:
    """Return the user's runtime folder (``$XDG_RUNTIME_DIR``), where the sidecar daemon's
    default socket lives; None when it is not set (the daemon then uses the temp folder)."""
    env = dict(os.environ) if env is None else env
    return env.get("XDG_RUNTIME_DIR") or None


def default_key_path(env: dict[str, str] | None = None) -> Path:
    """Return the node key's path: ``$RAMNET_KEY_FILE``, else ``node.key`` in the config folder."""
    env = dict(os.environ) if env is None else env
    if env.get("RAMNET_KEY_FILE"):
        return Path(env["RAMNET_KEY_FILE"])
    return user_config_dir(env) / "node.key"


def default_config_path(env: dict[str, str] | None = None) -> Path:
    """Return where the user's config file would be (it need not exist)."""
    env = dict(os.environ) if env is None else env
    if env.get("RAMNET_CONFIG"):
        return Path(env["RAMNET_CONFIG"])
    return user_config_dir(env) / "config.toml"


def _read_toml(path: Path, explicit: bool) -> dict[str, Any]:
    if not path.is_file():
        if explicit:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {', '.join(unknown)}")
    return data


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Resolve the settings.

    Args:
        config_file: An explicit TOML file (must exist); the default location otherwise.
        overrides: Values from command-line flags; None values are ignored.
        env: The environment to read (``os.environ`` when None).

    Returns:
        The resolved Settings.

    Raises:
        ConfigError: A missing explicit file, bad TOML, unknown keys, or bad values.
    """
    env = dict(os.environ) if env is None else env
    explicit = config_file is not None or bool(env.get("RAMNET_CONFIG"))
    path = Path(config_file) if config_file is not None else default_config_path(env)
    settings = Settings()
    for name, value in _read_toml(path, explicit).items():
        settings = replace(settings, **{name: _coerce(name, value, str(path))})
    for name, var in _ENV.items():
        if env.get(var):
            settings = replace(settings, **{name: _coerce(name, env[var], var)})
    for name, value in (overrides or {}).items():
        if value is not None:
            settings = replace(settings, **{name: _coerce(name, value, f"--{name}")})
    return settings
