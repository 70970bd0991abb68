"""`shiren model list | promote NAME | rollback` and `shiren train feedback` (registered by core.cli).

    shiren model list                       # adapter versions: ▶ active, candidates with their metrics
    shiren model promote fb-20260101-120000 # make a candidate (or a retired one) the active adapter
    shiren model rollback                   # back to the active adapter's parent
    shiren train feedback                   # one round when >= 20 new ratings (--force: always)
    shiren train feedback --every 24        # loop: one round a day (or use cron, see docs/feedback.md)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from core.types import ShirenError

model_app = typer.Typer(help="Adapter versions: list, promote, roll back.", no_args_is_help=True)

Url = Annotated[
    str | None,
    typer.Option("--database-url", envvar="SHIREN_DATABASE_URL",
                 help="Database (default: SQLite in the data dir)."),
]


def _fail(e: Exception) -> typer.Exit:
    typer.echo(f"Error: {e}", err=True)
    return typer.Exit(1)


def _metrics_line(m: dict) -> str:
    c = m.get("candidate") if isinstance(m, dict) else None
    if not isinstance(c, dict):
        return ""
    a = m.get("active") or {}

    def f(d, k):
        v = d.get(k)
        return "—" if v is None else f"{v:.3f}"

    return (f"pref {f(a, 'preference')}→{f(c, 'preference')} · format {f(c, 'format')} · rhyme {f(c, 'rhyme')}"
            f" · tone {f(c, 'tone')} · repeat {f(c, 'repeat')}")


@model_app.command("list")
def model_list(database_url: Url = None,
               as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The adapter versions, oldest first (▶ marks the active one), and the latest feedback runs."""
    from db.store import Store

    try:
        with Store(database_url, upgrade=False) as store:
            adapters, runs = store.list_adapters(), store.list_runs(5)
    except ShirenError as e:
        raise _fail(e) from None
    if as_json:
        typer.echo(json.dumps({"adapters": [a.__dict__ for a in adapters], "runs": [r.__dict__ for r in runs]},
                              ensure_ascii=False, indent=1, default=str))
        return
    if not adapters:
        from core.adapters import shipped_default

        d = shipped_default()
        typer.echo(f"no adapters in the database; the poet uses {d.name if d else 'the bare base model'}"
                   + (" (shipped default)" if d else ""))
    for a in adapters:
        mark = "▶" if a.status == "active" else " "
        typer.echo(f"{mark} {a.name:<24} {a.status:<9} parent {a.parent or '-':<22} {a.created:%Y-%m-%d %H:%M} "
                   f"{_metrics_line(a.metrics)}")
    for r in runs:
        typer.echo(f"  run #{r.id} {r.kind} {r.started:%Y-%m-%d %H:%M} {r.outcome}"
                   + (f" → {r.adapter}" if r.adapter else "") + (f" ({r.error})" if r.error else ""))


@model_app.command("promote")
def model_promote(name: str, database_url: Url = None) -> None:
    """Make NAME the active adapter (the previous active one is retired). Running poets pick it up on reload."""
    from core.adapters import is_adapter
    from db.store import Store

    try:
        with Store(database_url, upgrade=False) as store:
            rec = next((a for a in store.list_adapters() if a.name == name), None)
            if rec is not None and not is_adapter(Path(rec.path)):
                raise ShirenError(f"adapter {name} has no files at {rec.path}; not promoting it")
            store.promote(name)
    except ShirenError as e:
        raise _fail(e) from None
    typer.echo(f"{name} is now the active adapter")


@model_app.command("rollback")
def model_rollback(database_url: Url = None) -> None:
    """Re-activate the active adapter's nearest retired ancestor."""
    from db.store import Store

    try:
        with Store(database_url, upgrade=False) as store:
            back = store.rollback()
    except ShirenError as e:
        raise _fail(e) from None
    if back is None:
        typer.echo("nothing to roll back to (no active adapter, or it has no retired ancestor)", err=True)
        raise typer.Exit(1)
    typer.echo(f"rolled back: {back.name} is the active adapter again")


def feedback(
    min_ratings: Annotated[int, typer.Option("--min-ratings", help="New ratings needed since the last round.")] = 20,
    force: Annotated[bool, typer.Option("--force", help="Train even with fewer new ratings.")] = False,
    every: Annotated[float, typer.Option("--every", help="Hours between rounds: keep running (0: one round).")] = 0.0,
    steps: Annotated[int, typer.Option("--steps", help="Max DPO steps.")] = 120,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (LoRA).")] = 1e-4,
    beta: Annotated[float, typer.Option("--beta", help="DPO beta.")] = 0.1,
    sft_weight: Annotated[float, typer.Option("--sft-weight", help="Weight of the SFT term.")] = 0.2,
    threads: Annotated[int, typer.Option("--threads", help="torch threads (0: default).")] = 0,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", envvar="SHIREN_MODEL_DIR",
                                                   help="Base model dir (default: the shipped one).")] = None,
    database_url: Url = None,
) -> None:
    """One feedback fine-tuning round on the users' ratings (DPO on the active adapter, gated promotion).
    Exit status: 0 promoted or skipped, 3 kept as a candidate, 1 failed, 4 another round is running."""
    from db.store import Store
    from training.feedback import FeedbackBusyError, FeedbackConfig, run_feedback_round

    cfg = FeedbackConfig(max_steps=steps, lr=lr, beta=beta, sft_weight=sft_weight, threads=threads)

    def say(fraction: float, line: str) -> None:
        typer.echo(f"[{100 * fraction:5.1f}%] {line}")

    code = 0
    while True:
        try:
            with Store(database_url, upgrade=False) as store:
                r = run_feedback_round(store, model_dir, min_new_ratings=min_ratings, force=force, config=cfg,
                                       progress=say)
            code = {"promoted": 0, "skipped": 0, "candidate": 3}.get(r.outcome, 1)
            if r.outcome not in ("skipped",):
                typer.echo(f"{r.outcome}: {r.message} ({r.seconds:.0f}s)")
        except FeedbackBusyError as e:
            typer.echo(str(e), err=True)
            code = 4
        except ShirenError as e:
            typer.echo(f"Error: {e}", err=True)
            code = 1
        if every <= 0:
            break
        typer.echo(f"next round in {every:g} h")
        time.sleep(every * 3600)
    raise typer.Exit(code)
