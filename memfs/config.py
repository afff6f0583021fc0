"""The user's own settings: where they live (XDG) and what they say.

``MEMFS_CONFIG`` points at another config file; ``MEMFS_DATA_DIR`` moves memfs's data folder.
Credentials for clouds never live here: they come from each store's standard chain.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
import yaml
from pydantic import ValidationError

from memfs.errors import ConfigError
from memfs.schema import UserConfig

APP_NAME = "memfs"


def config_path() -> Path:
    """The user config file, ``~/.config/memfs/config.yaml`` unless ``MEMFS_CONFIG`` is set."""
    override = os.environ.get("MEMFS_CONFIG")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_config_path(APP_NAME) / "config.yaml"


def data_dir() -> Path:
    """memfs's data folder (the default cloud lives here), ``MEMFS_DATA_DIR`` if set."""
    override = os.environ.get("MEMFS_DATA_DIR")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path(APP_NAME)


def load_user_config() -> UserConfig:
    """Read the user config; a missing file is an empty config."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return UserConfig()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), 1, f"cannot read: {error}") from error
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ConfigError(str(path), (mark.line + 1) if mark else 1, "invalid YAML") from error
    if not isinstance(data, dict):
        raise ConfigError(str(path), 1, "the config must be a mapping")
    try:
        return UserConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(str(path), 1, f"{where}: {first['msg']}") from error
