"""The user's own settings: where they live (XDG) and what they say.

``MEMFS_CONFIG`` points at another config file; ``MEMFS_DATA_DIR`` moves memfs's data folder.
Credentials for clouds never live here: they come from each store's standard chain.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from memfs.errors import ConfigError, MemfsError
from memfs.schema import is_plain_user_config
from memfs.util import atomic_write
from memfs.yamllib import yaml

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from memfs.models import UserConfig

APP_NAME = "memfs"


class SettingError(MemfsError):
    """An environment setting (MEMFS_*) memfs cannot use: bad config, exit 2."""

    exit_code = 2


class UnknownCloudError(MemfsError):
    """A cloud name that is not configured: bad usage, exit 2 (as an unknown remote)."""

    exit_code = 2


def seconds_from_env(name: str, default: float) -> float:
    """The number of seconds the environment variable ``name`` holds, ``default`` if unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise SettingError(f"{name}={text!r} is not a number of seconds (e.g. 60 or 0.5)")
    return value


def count_from_env(name: str, default: int) -> int:
    """The whole number the environment variable ``name`` holds, ``default`` if unset."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise SettingError(f"{name}={text!r} is not a whole number (e.g. {default})")
    return int(text)


def config_path() -> Path:
    """The user config file, ``~/.config/memfs/config.yaml`` unless ``MEMFS_CONFIG`` is set."""
    override = os.environ.get("MEMFS_CONFIG")
    if override:
        return Path(override).expanduser()
    return _user_folder("XDG_CONFIG_HOME", ".config") / "config.yaml"


def data_dir() -> Path:
    """memfs's data folder (the default cloud lives here), ``MEMFS_DATA_DIR`` if set."""
    override = os.environ.get("MEMFS_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return _user_folder("XDG_DATA_HOME", ".local/share")


def _user_folder(xdg_variable: str, under_home: str) -> Path:
    """platformdirs' user config (data) path for memfs, found by hand on Linux in the plain
    case (an absolute ``$XDG_...`` variable, else an absolute ``$HOME``): importing
    platformdirs loads tempfile, shutil, random, bz2 and lzma (~4 ms a push or pull).
    Anything else (another OS, a relative XDG variable or HOME) asks platformdirs;
    tests/test_imports.py holds the two to the same answers."""
    if sys.platform == "linux":
        xdg = os.environ.get(xdg_variable, "")
        if xdg.startswith("/"):
            return Path(xdg) / APP_NAME
        home = os.environ.get("HOME", "")
        if xdg == "" and home.startswith("/"):
            return Path(os.path.join(home.rstrip("/") or "/", under_home, APP_NAME))
    import platformdirs

    if xdg_variable == "XDG_CONFIG_HOME":
        return platformdirs.user_config_path(APP_NAME)
    return platformdirs.user_data_path(APP_NAME)


def load_user_config() -> UserConfig:
    """Read the user config; a missing file is an empty config."""
    from pydantic import ValidationError

    from memfs.models import UserConfig

    path, data = _read_user_config()
    try:
        return UserConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(str(path), 1, f"{where}: {first['msg']}") from error


def commit_identity() -> str | None:
    """``Name <email>`` from the user config, if it names one.

    Every commit asks: a plainly valid config is read without pydantic (whose import costs
    more than a small commit); anything else goes through ``load_user_config``'s model.
    """
    _, data = _read_user_config()
    if is_plain_user_config(data):
        identity = data.get("identity")
        return f"{identity['name']} <{identity['email']}>" if identity else None
    model = load_user_config().identity
    return f"{model.name} <{model.email}>" if model else None


def _read_user_config() -> tuple[Path, dict[str, Any]]:
    """The config file's path and its keys ({} when there is none); ConfigError if unreadable."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return path, {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), 1, f"cannot read: {error}") from error
    from memfs.frontmatter import load_yaml, yaml_error_summary  # here: history imports config

    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = (mark.line + 1) if mark else 1
        raise ConfigError(str(path), line, yaml_error_summary(error)) from error
    if not isinstance(data, dict):
        raise ConfigError(str(path), 1, "the config must be a mapping")
    return path, data


LOCAL_CLOUD = "local"


def default_cloud_url() -> str:
    """The cloud used when none is configured: a folder in memfs's data dir."""
    return (data_dir() / "cloud").as_uri()


def save_user_config(config: UserConfig) -> None:
    """Write the user config back (crash-safe), keeping keys this version does not know."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    atomic_write(path, yaml.safe_dump(data, sort_keys=False).encode())


def resolve_cloud(name: str | None = None) -> tuple[str, str, dict[str, Any]]:
    """(name, url, options) of the cloud ``name``: --cloud, MEMFS_CLOUD, default, local.

    A value containing ``://`` is taken as a cloud URL as it is.
    """
    config = load_user_config()
    chosen = name or os.environ.get("MEMFS_CLOUD") or config.default_cloud
    if chosen is None or (chosen == LOCAL_CLOUD and LOCAL_CLOUD not in config.clouds):
        return LOCAL_CLOUD, default_cloud_url(), {}
    if "://" in chosen:
        return chosen, chosen.rstrip("/"), storage_options_for(chosen, config)
    cloud = config.clouds.get(chosen)
    if cloud is None:
        known = ", ".join(sorted([LOCAL_CLOUD, *config.clouds]))
        raise UnknownCloudError(
            f"no cloud named {chosen!r} (known: {known}); add one with 'memfs cloud add'"
        )
    return chosen, cloud.url.rstrip("/"), dict(cloud.options)


def storage_options_for(url: str, config: UserConfig | None = None) -> dict[str, Any]:
    """The options of the configured cloud whose URL is the longest prefix of ``url``."""
    if config is None:
        _, data = _read_user_config()
        if is_plain_user_config(data):  # every push and pull asks: no pydantic when plain
            clouds = [(c["url"], c.get("options", {})) for c in data.get("clouds", {}).values()]
        else:
            clouds = [(c.url, c.options) for c in load_user_config().clouds.values()]
    else:
        clouds = [(c.url, c.options) for c in config.clouds.values()]
    url = url.removeprefix("memfs::")
    matches = [
        (prefix, options) for prefix, options in clouds if url.startswith(prefix.rstrip("/") + "/")
    ]
    return dict(max(matches, key=lambda match: len(match[0]))[1]) if matches else {}
