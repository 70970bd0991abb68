"""Shared helpers for the terminal-app tests (no tests here): a cached tiny poet, a service on a temporary
Store, pilot helpers, and the SVG snapshot check (`SHIREN_UPDATE_SNAPSHOTS=1` rewrites the files).

pytest-textual-snapshot would pin pytest<9, so the snapshot check is this small module instead.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import threading
from datetime import datetime
from pathlib import Path

from textual.widgets import Input, TextArea

from core.types import ShirenError
from db.store import Store
from tui.app import ShirenApp
from tui.service import ShirenService

SNAPSHOTS = Path(__file__).parent / "snapshots" / "tui"
FIXED_TIME = datetime(2024, 3, 1, 8, 30, 0)
JINGYESI = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
DENG = "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。"


@functools.lru_cache(maxsize=1)
def tiny():
    """One tiny poet for the whole session (it takes seconds to build)."""
    from core.testing import tiny_poet_with_critic

    return tiny_poet_with_critic(0)


def make_service(tmp_path: Path, *, retrain=None, poet_factory=None, load: bool = True, seed: int = 1):
    store = Store(f"sqlite:///{tmp_path}/tui.db")
    svc = ShirenService.for_local_user(poet_factory or tiny, store, retrain, seed=seed)
    if load:
        svc.load_poet()
    return svc


def make_app(svc: ShirenService) -> ShirenApp:
    return ShirenApp(svc)


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers finish and their messages be handled."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def type_into(pilot, selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector)
    widget.focus()
    await pilot.pause()
    if isinstance(widget, Input):
        widget.value = ""
    for ch in text:
        await pilot.press(ch)


def failing_factory(message: str = "no model at /nowhere (set SHIREN_MODEL_DIR or reinstall Shiren)"):
    def factory():
        raise ShirenError(message)

    return factory


class GatedPoet:
    """The tiny poet, but `write` waits for `gate` (to test the busy state and cancel)."""

    def __init__(self) -> None:
        self.inner = tiny()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.version = self.inner.version

    def validate(self, req):
        return self.inner.validate(req)

    def write(self, req):
        self.started.set()
        self.gate.wait(30)
        return self.inner.write(req)

    def close(self) -> None:
        pass


# ---- snapshots --------------------------------------------------------------------------------------

_VOLATILE = [
    (re.compile(r"terminal-\d+"), "terminal-X"),  # rich's per-export id prefix
    (re.compile(r"<title[^>]*>.*?</title>", re.S), "<title/>"),
]


def normalise_svg(svg: str) -> str:
    for pat, rep in _VOLATILE:
        svg = pat.sub(rep, svg)
    return svg


def svg_text(svg: str) -> str:
    """The characters on the screen, line by line (for a readable failure message)."""
    rows: dict[str, list[str]] = {}
    for m in re.finditer(r'<text[^>]*y="([\d.]+)"[^>]*>(.*?)</text>', svg, re.S):
        rows.setdefault(m.group(1), []).append(m.group(2))
    import html

    return "\n".join(html.unescape("".join(v)).replace("\xa0", " ") for _, v in
                     sorted(rows.items(), key=lambda kv: float(kv[0])))


def steady(app) -> None:
    """No blinking cursor in a snapshot."""
    for screen in app.screen_stack:
        for w in screen.query(Input):
            w.cursor_blink = False
        for w in screen.query(TextArea):
            w.cursor_blink = False


async def assert_snapshot(pilot, name: str) -> None:
    steady(pilot.app)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    svg = normalise_svg(pilot.app.export_screenshot(title="shiren"))
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("SHIREN_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        if not path.exists() and os.environ.get("SHIREN_UPDATE_SNAPSHOTS") != "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(svg, encoding="utf-8")
            raise AssertionError(f"new snapshot {path.name} written; check it and run again")
        path.write_text(svg, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if svg != expected:
        import tempfile

        out = Path(tempfile.gettempdir()) / f"shiren-snapshot-{name}.actual.svg"
        out.write_text(svg, encoding="utf-8")
        diff = "\n".join(difflib.unified_diff(svg_text(expected).splitlines(), svg_text(svg).splitlines(),
                                              "expected", "actual", lineterm="", n=1))
        raise AssertionError(f"snapshot {name} differs (actual written to {out}; "
                             f"SHIREN_UPDATE_SNAPSHOTS=1 accepts it):\n{diff or '(colours/styles differ)'}")
