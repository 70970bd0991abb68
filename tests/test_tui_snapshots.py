"""SVG snapshots of the main screens, at 80×24 and larger (fixed seed, tiny model, fixed clock, no blink).

`SHIREN_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_tui_snapshots.py` rewrites them.
"""

from __future__ import annotations

import asyncio

import pytest
from test_tui_support import DENG, FIXED_TIME, assert_snapshot, make_app, make_service, settle, type_into
from textual.widgets import DataTable, Select, TextArea

from core.types import PoemRequest


@pytest.fixture
def fixed_clock(monkeypatch):
    import db.store

    monkeypatch.setattr(db.store, "utcnow", lambda: FIXED_TIME)


async def _write_poem(pilot, form="七绝", title="春夜", acrostic="春江花月") -> None:
    screen = pilot.app.screen
    screen.query_one("#form", Select).value = form
    await pilot.pause()
    await type_into(pilot, "#title", title)
    if acrostic:
        await type_into(pilot, "#acrostic", acrostic)
    await pilot.press("ctrl+r")
    await settle(pilot)


def _snap(tmp_path, name, size, steps, **kw):
    svc = make_service(tmp_path, **kw)

    async def go():
        app = make_app(svc)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await steps(pilot, svc)
            await assert_snapshot(pilot, name)

    asyncio.run(go())


async def _nothing(pilot, svc):
    pass


async def _poem_rated(pilot, svc):
    await _write_poem(pilot)
    await pilot.press("4")


async def _poem_vertical(pilot, svc):
    await _write_poem(pilot)
    await pilot.press("v")


async def _poem_traditional(pilot, svc):
    await _write_poem(pilot, form="五律", title="秋思", acrostic="")
    await pilot.press("t")


async def _explain(pilot, svc):
    await _write_poem(pilot)
    await pilot.press("e")
    await pilot.pause()


async def _check(pilot, svc):
    await pilot.press("f3")
    await pilot.pause()
    pilot.app.screen.query_one(TextArea).text = DENG
    await pilot.press("ctrl+r")


async def _check_error(pilot, svc):
    await pilot.press("f3")
    await pilot.pause()
    pilot.app.screen.query_one(TextArea).text = "hello"
    await pilot.press("ctrl+r")


async def _compose_error(pilot, svc):
    pilot.app.screen.query_one("#form", Select).value = "五绝"
    await pilot.pause()
    await type_into(pilot, "#acrostic", "春江花月夜")
    await pilot.press("enter")


async def _history(pilot, svc):
    for title in ("春夜", "秋思"):
        [p] = svc.write(PoemRequest(form="七绝", title=title))
    svc.rate(p.id, 5)
    await pilot.press("f4")
    await settle(pilot)
    pilot.app.screen.query_one(DataTable).focus()


async def _model(pilot, svc):
    svc.store.add_adapter("sft-1", "/adapters/sft-1", None, {"eval_loss": 2.31, "gelv": 0.98}, status="retired")
    svc.store.add_adapter("fb-1", "/adapters/fb-1", "sft-1", {"reward": 0.62, "pairs": 40}, status="active")
    await pilot.press("f5")
    await pilot.pause()


async def _help(pilot, svc):
    await pilot.press("f1")
    await pilot.pause()


SMALL, LARGE = (80, 24), (120, 36)
CASES = [
    ("compose_empty", SMALL, _nothing),
    ("compose_error", SMALL, _compose_error),
    ("compose_poem", SMALL, _poem_rated),
    ("compose_vertical", SMALL, _poem_vertical),
    ("compose_traditional_large", LARGE, _poem_traditional),
    ("compose_poem_large", LARGE, _poem_rated),
    ("explain", SMALL, _explain),
    ("check", SMALL, _check),
    ("check_error", SMALL, _check_error),
    ("check_large", LARGE, _check),
    ("history", SMALL, _history),
    ("model", SMALL, _model),
    ("help", SMALL, _help),
]


@pytest.mark.parametrize(("name", "size", "steps"), CASES, ids=[c[0] for c in CASES])
def test_snapshot(tmp_path, fixed_clock, name, size, steps):
    _snap(tmp_path, name, size, steps)
