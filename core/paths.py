"""Where Shiren keeps things: the data dir (SHIREN_HOME) and the shipped model dir (SHIREN_MODEL_DIR)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

APP_NAME = "shiren"


def data_home() -> Path:
    """The runtime data dir: corpus, database, new adapters. `SHIREN_HOME` overrides the platform default."""
    env = os.environ.get("SHIREN_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def dataset_dir() -> Path:
    return data_home() / "dataset"


def cache_dir() -> Path:
    return data_home() / "cache"


def shipped_models_dir() -> Path:
    """The `models/` folder shipped with the code, whether installed editable or from a wheel."""
    return Path(str(resources.files("shiren_models")))


def model_dir() -> Path:
    """Base model dir: `SHIREN_MODEL_DIR` when set, else the shipped `models/base`."""
    env = os.environ.get("SHIREN_MODEL_DIR")
    if env:
        return Path(env).expanduser()
    return shipped_models_dir() / "base"


def critic_dir() -> Path:
    """Critic dir: `SHIREN_CRITIC_DIR` when set, else the shipped `models/critic`."""
    env = os.environ.get("SHIREN_CRITIC_DIR")
    if env:
        return Path(env).expanduser()
    return shipped_models_dir() / "critic"


def amateur_dir() -> Path:
    """Contrastive decoding's amateur (core.contrast): `SHIREN_AMATEUR_DIR` when set, else the shipped
    `models/amateur`."""
    env = os.environ.get("SHIREN_AMATEUR_DIR")
    if env:
        return Path(env).expanduser()
    return shipped_models_dir() / "amateur"


def tokenizer_dir() -> Path:
    """The tokenizer built by `shiren data prepare` (inside the dataset dir)."""
    return dataset_dir() / "tokenizer"


def ensure_data_home() -> Path:
    """The data dir, created when it is the default; an explicit SHIREN_HOME must already exist."""
    from core.types import ShirenError

    home = data_home()
    if os.environ.get("SHIREN_HOME"):
        if not home.is_dir():
            raise ShirenError(f"SHIREN_HOME={home} does not exist; create it first (mkdir -p {home})")
    else:
        home.mkdir(parents=True, exist_ok=True)
    return home
