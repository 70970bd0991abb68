"""`shiren tui`: the terminal app, on this machine, offline (registered by core.cli)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional  # noqa: UP035 — Typer reads the annotation

import typer


def _find_retrain(store) -> Callable | None:
    """The feedback-training round, if this installation has one (training.feedback.tui_round)."""
    try:
        from training import feedback  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 — not built (yet): the model screen says so
        return None
    fn = getattr(feedback, "tui_round", None)
    if fn is None:
        return None
    return lambda progress: fn(store, progress)


def _adapter_dir(store, database_url: str | None, model_dir: Path | None = None) -> Path | None:
    """The adapter to load: the database's active one, else the shipped default (core.adapters)."""
    try:
        from core.adapters import resolve_adapter
    except ImportError:  # an older core: the active adapter only
        active = store.active_adapter()
        return Path(active.path) if active is not None and Path(active.path).exists() else None
    return resolve_adapter(database_url=database_url, model_dir=model_dir)


def tui(
    database_url: Optional[str] = typer.Option(None, "--database-url", envvar="SHIREN_DATABASE_URL",  # noqa: UP045
                                               help="Database (default: SQLite in the data dir)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", envvar="SHIREN_MODEL_DIR",  # noqa: UP045
                                             help="Base model dir (default: the shipped weights)."),
) -> None:
    """Open the terminal app: write, check, rate and keep poems, offline."""
    from db.store import Store
    from tui.app import ShirenApp
    from tui.service import ShirenService

    store = Store(database_url)
    holder: dict[str, ShirenService] = {}

    def poet_factory():
        from core.poet import Poet

        adapter = _adapter_dir(store, database_url, model_dir)
        poet = Poet.load(model_dir, adapter=adapter)
        if "service" in holder:
            active = store.active_adapter()
            holder["service"].adapter_version = (
                active.name if active is not None and adapter is not None and Path(active.path) == adapter
                else (adapter.name if adapter is not None else None))
        return poet

    service = ShirenService.for_local_user(poet_factory, store, _find_retrain(store))
    holder["service"] = service
    try:
        ShirenApp(service).run()
    finally:
        store.close()
