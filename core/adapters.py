"""Which LoRA adapter the poet uses: an explicit one, else the database's active one, else the shipped default.

Shipped adapters live in `models/adapters/<name>/` (peft folders); `models/adapters/ACTIVE` names the
default. Adapters trained later (feedback rounds) live in `SHIREN_HOME/adapters/<name>/` and are
promoted through the database (`shiren model promote`).
"""

from __future__ import annotations

from pathlib import Path

from core import paths


def shipped_adapters_dir() -> Path:
    return paths.shipped_models_dir() / "adapters"


def user_adapters_dir() -> Path:
    return paths.data_home() / "adapters"


def is_adapter(path: Path) -> bool:
    return (Path(path) / "adapter_config.json").exists() and (Path(path) / "adapter_model.safetensors").exists()


def shipped_default() -> Path | None:
    marker = shipped_adapters_dir() / "ACTIVE"
    if not marker.exists():
        return None
    p = shipped_adapters_dir() / marker.read_text("utf-8").strip()
    return p if is_adapter(p) else None


def resolve_adapter(explicit: Path | None = None, database_url: str | None = None,
                    model_dir: Path | None = None) -> Path | None:
    """The adapter dir to load, or None for the bare base model. The shipped default adapter belongs to
    the shipped base model: with another base (`model_dir`), only an explicit or database adapter applies."""
    if explicit is not None:
        return Path(explicit)
    try:
        url = database_url
        db_file = paths.data_home() / "shiren.db"
        if url is not None or db_file.exists():  # no database, no need to import one (~0.7 s)
            from db.store import Store

            with Store(url, upgrade=False) as store:
                rec = store.active_adapter()
            if rec is not None and is_adapter(Path(rec.path)):
                return Path(rec.path)
    except Exception:  # noqa: BLE001 - an unreadable/old database must not stop the poet; fall back
        pass
    shipped_base = paths.shipped_models_dir() / "base"
    if model_dir is not None and Path(model_dir).resolve() != shipped_base.resolve():
        return None
    return shipped_default()
