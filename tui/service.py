"""The terminal app's service layer: the only thing the screens talk to.

It wraps the poet (loaded lazily, in a worker thread, by `load_poet`), the `Store` (never a Session)
and an optional feedback-training function. Every method is synchronous; the screens call the slow
ones (`load_poet`, `write`, `run_retrain`) from `@work(thread=True)` workers.
"""

from __future__ import annotations

import getpass
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cpu_share import background_thread
from core.types import DEFAULT_TEMPERATURE, Poem, PoemRequest, RequestError, ShirenError

if TYPE_CHECKING:
    from core.gelv import Analysis
    from core.poet import Poet
    from db.store import AdapterRecord, PoemRecord, RunRecord, Store

# One feedback-training round: called with progress(fraction 0..1, log line); returns a result dict.
Progress = Callable[[float, str], None]
RetrainFn = Callable[[Progress], dict]

EXPORT_FORMATS = ("markdown", "text")  # the history; a single poem can also be a PNG card (export_card)
MAX_EXPORT = 10_000


@dataclass(frozen=True)
class StoredPoem:
    """A poem written in this session, with its database id and the request that produced it."""

    id: int
    poem: Poem
    request: PoemRequest
    rating: int | None = None


def local_user_name() -> str:
    try:
        return getpass.getuser() or "local"
    except Exception:  # noqa: BLE001 — no passwd entry, no env var: still usable
        return "local"


def parse_int(value: str, what: str, lo: int, hi: int) -> int:
    try:
        n = int((value or "").strip())
    except ValueError:
        raise RequestError(f"{what} must be a whole number between {lo} and {hi}") from None
    if not lo <= n <= hi:
        raise RequestError(f"{what} must be between {lo} and {hi}")
    return n


def parse_float(value: str, what: str, lo: float, hi: float) -> float:
    try:
        x = float((value or "").strip())
    except ValueError:
        raise RequestError(f"{what} must be a number between {lo} and {hi}") from None
    if not lo <= x <= hi:
        raise RequestError(f"{what} must be between {lo} and {hi}")
    return x


def split_keywords(value: str) -> tuple[str, ...]:
    import re

    return tuple(k for k in re.split(r"[\s,，、;；/]+", value or "") if k)


class ShirenService:
    """What the app can do. `poet_factory()` builds the poet (slow: call `load_poet` from a worker)."""

    def __init__(
        self,
        poet_factory: Callable[[], Poet],
        store: Store,
        user_id: int,
        retrain: RetrainFn | None = None,
        *,
        seed: int | None = None,
        adapter_version: str | None = None,
    ) -> None:
        self.poet_factory = poet_factory
        self.store = store
        self.user_id = user_id
        self.retrain = retrain
        # A fixed seed makes the app deterministic (tests, demos): request k uses seed + k.
        self._seed = seed
        self._seed_lock = threading.Lock()
        self.adapter_version = adapter_version
        self._poet: Poet | None = None
        self._poet_lock = threading.Lock()
        self.load_error: str | None = None

    @classmethod
    def for_local_user(
        cls, poet_factory: Callable[[], Poet], store: Store, retrain: RetrainFn | None = None, **kw: Any
    ) -> ShirenService:
        """The service for the person at this terminal (source "tui", the OS user name)."""
        name = local_user_name()
        user_id = store.ensure_user("tui", name, name)
        return cls(poet_factory, store, user_id, retrain, **kw)

    # -- the poet ------------------------------------------------------------------------------

    @property
    def poet(self) -> Poet | None:
        return self._poet

    @property
    def poet_ready(self) -> bool:
        return self._poet is not None

    def load_poet(self) -> Poet:
        """Build the poet (slow). Raises ShirenError with a user-facing message on failure."""
        with self._poet_lock:
            if self._poet is not None:
                return self._poet
            try:
                poet = self.poet_factory()
            except ShirenError as e:
                self.load_error = str(e)
                raise
            except Exception as e:  # noqa: BLE001 — anything else is still a load failure to show
                self.load_error = f"cannot load the model: {e}"
                raise ShirenError(self.load_error) from e
            self._poet = poet
            self.load_error = None
            return poet

    def reload_poet(self) -> Poet:
        """Drop the current poet and build a new one (after a promote / roll back)."""
        with self._poet_lock:
            old, self._poet = self._poet, None
        if old is not None:
            try:
                old.close()
            except Exception:  # noqa: BLE001
                pass
        return self.load_poet()

    @property
    def model_version(self) -> str:
        return self._poet.version if self._poet is not None else "(not loaded)"

    def _next_seed(self) -> int | None:
        with self._seed_lock:
            if self._seed is None:
                return None
            s = self._seed
            self._seed += 1
            return s

    # -- writing -------------------------------------------------------------------------------

    def build_request(
        self,
        *,
        form: str,
        title: str = "",
        keywords: str = "",
        acrostic: str = "",
        first_line: str = "",
        cipai: str = "",
        n: str = "1",
        temperature: str = f"{DEFAULT_TEMPERATURE:g}",
    ) -> PoemRequest:
        """A request from the compose form's raw strings, validated. RequestError says what is wrong."""
        req = PoemRequest(
            form=form,
            title=(title or "").strip(),
            keywords=split_keywords(keywords),
            acrostic=(acrostic or "").strip(),
            first_line=(first_line or "").strip(),
            cipai=(cipai or "").strip() if form == "词" else "",
            n=parse_int(n, "n (number of poems)", 1, 16),
            temperature=parse_float(temperature, "temperature", 0.05, 2.0),
        )
        return self.validate(req)

    def validate(self, req: PoemRequest) -> PoemRequest:
        if self._poet is not None:
            return self._poet.validate(req)
        from core.requests import normalize_request

        return normalize_request(req)

    def write(self, req: PoemRequest, is_cancelled: Callable[[], bool] = lambda: False) -> list[StoredPoem]:
        """Write and store poems (slow; call from a worker). Nothing is stored when cancelled meanwhile."""
        poet = self._poet or self.load_poet()
        if req.seed is None:
            seed = self._next_seed()
            if seed is not None:
                req = replace(req, seed=seed)
        req = poet.validate(req)
        poems = poet.write(req)
        if is_cancelled():
            return []
        ids = self.store.record_poems(self.user_id, req, poems, adapter_version=self.adapter_version)
        return [StoredPoem(i, p, req) for i, p in zip(ids, poems, strict=True)]

    def rate(self, poem_id: int, stars: int) -> None:
        self.store.rate(self.user_id, poem_id, stars)

    def revise(self, poem: StoredPoem, line: int) -> StoredPoem:
        """Rewrite one line of a stored poem (slow; call from a worker); the revision is stored, linked to it."""
        from core.revise import RevisionTarget

        poet = self._poet or self.load_poet()
        new = poet.revise(poem.request, poem.poem.text, RevisionTarget(line=line))
        pid = self.store.record_revision(self.user_id, poem.id, new, adapter_version=self.adapter_version)
        return StoredPoem(pid, new, poem.request)

    def doubts(self, poem: Poem) -> str:
        """The characters the critic doubts most, as 「X」(第n句)、… ('' without a critic or a model)."""
        if self._poet is None:
            return ""
        from core.write_cli import doubt_places

        return doubt_places(self._poet, poem)

    # -- 格律 ----------------------------------------------------------------------------------

    def check(self, text: str, form: str | None = None, cipai: str | None = None) -> Analysis:
        """格律 analysis (works without the model). RequestError on garbage."""
        from core.gelv import analyze

        if (text or "").strip() == "":
            raise RequestError("empty text: type or paste a poem (lines separated by newlines or ，。)")
        return analyze(text, form=form or None, cipai=(cipai or "").strip() or None)

    def explain(self, text: str, form: str, cipai: str = "") -> Analysis:
        """The analysis of a poem Shiren wrote (its form, or its 词牌)."""
        if form == "词":
            return self.check(text, None, cipai or None)
        return self.check(text, form, None)

    # -- history -------------------------------------------------------------------------------

    def history(self, search: str = "", limit: int = 200, offset: int = 0) -> list[PoemRecord]:
        return self.store.history(self.user_id, limit=limit, offset=offset, search=search)

    def count_history(self, search: str = "") -> int:
        return self.store.count_history(self.user_id, search)

    def get_poem(self, poem_id: int) -> PoemRecord | None:
        rec = self.store.get_poem(poem_id)
        return rec if rec is not None and rec.user_id == self.user_id else None

    def delete(self, poem_id: int) -> bool:
        """Delete one of the user's poems and its rating."""
        return self.store.delete_poem(self.user_id, poem_id)

    def export(self, fmt: str = "markdown", search: str = "") -> str:
        """The user's poems (matching `search`), newest first, as Markdown or plain text."""
        if fmt not in EXPORT_FORMATS:
            raise RequestError(f"unknown export format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")
        recs = self.history(search, limit=500)
        offset = len(recs)
        while len(recs) < MAX_EXPORT:
            more = self.history(search, limit=500, offset=offset)
            if not more:
                break
            recs += more
            offset += len(more)
        return format_export(recs, fmt)

    def export_to(self, path: str | Path, fmt: str = "markdown", search: str = "") -> int:
        """Write the export to `path` (atomically); returns how many poems it holds."""
        text = self.export(fmt, search)
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, text)
        return self.count_history(search)

    def export_card(self, poem_id: int, path: str | Path, *, layout: str = "vertical", tones: bool = False,
                    script: str = "simplified") -> CardExport:
        """One of the user's poems as a PNG card at `path` (atomically; slow on first use: call from a
        worker). Without a 楷 font the same card is written as text next to it (`.txt`) and
        `fallback` says why."""
        from core.card import CardPoem, FontMissingError, card_layout, card_text, render_card

        rec = self.get_poem(poem_id)
        if rec is None:
            raise RequestError(f"no poem #{poem_id} in your history")
        poem = CardPoem(rec.text, rec.form, rec.title, rec.cipai)
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            img = render_card(poem, layout=layout, tones=tones, script=script)
        except FontMissingError as e:
            lay, footer = card_layout(poem, layout=layout, script=script)
            out = path.with_suffix(".txt")
            _write_atomic(out, card_text(lay, footer) + "\n")
            return CardExport(out, str(e))
        tmp = path.with_name(path.name + ".tmp")
        img.save(tmp, format="PNG")
        tmp.replace(path)
        return CardExport(path)

    # -- model and feedback training -----------------------------------------------------------

    @property
    def can_retrain(self) -> bool:
        return self.retrain is not None

    def model_info(self) -> dict[str, Any]:
        stats = self.store.stats()
        return {
            "base": self.model_version,
            "loaded": self.poet_ready,
            "load_error": self.load_error,
            "active": stats.get("active_adapter"),
            "ratings": stats.get("ratings", 0),
            "poems": stats.get("poems", 0),
            "users": stats.get("users", 0),
        }

    def adapters(self) -> list[AdapterRecord]:
        return self.store.list_adapters()

    def runs(self, limit: int = 20) -> list[RunRecord]:
        return self.store.list_runs(limit)

    def promote(self, name: str) -> None:
        self.store.promote(name)

    def rollback(self) -> AdapterRecord | None:
        return self.store.rollback()

    def run_retrain(self, progress: Progress) -> dict:
        """One feedback fine-tuning round (slow; call from a worker)."""
        if self.retrain is None:
            raise ShirenError("feedback training is not available in this installation")
        with background_thread():  # poems written meanwhile leave the round its core (core.cpu_share)
            result = self.retrain(progress)
        return dict(result or {})


@dataclass(frozen=True)
class CardExport:
    """Where a card was written; `fallback` (why) when it had to be text."""

    path: Path
    fallback: str | None = None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def stars_text(stars: int | None) -> str:
    if not stars:
        return "☆☆☆☆☆"
    return "★" * stars + "☆" * (5 - stars)


def poem_heading(title: str, form: str, cipai: str = "") -> str:
    kind = f"{cipai}（词）" if form == "词" and cipai else form
    return f"{title} · {kind}" if title else kind


def format_export(recs: list[PoemRecord], fmt: str) -> str:
    out: list[str] = []
    if fmt == "markdown":
        out.append("# Shiren — my poems\n")
        for r in recs:
            head = r.title or "无题"
            kind = f"{r.cipai}（词）" if r.form == "词" and r.cipai else r.form
            out.append(f"## {head}\n")
            out.append(f"*{kind}* · {r.created:%Y-%m-%d} · {stars_text(r.rating)} · #{r.id}\n")
            out.append("\n".join(f"{ln}  " for ln in r.text.split("\n") if ln) + "\n")
    else:
        for r in recs:
            head = r.title or "无题"
            kind = f"{r.cipai}（词）" if r.form == "词" and r.cipai else r.form
            out.append(f"{head}  [{kind}]  {r.created:%Y-%m-%d}  {stars_text(r.rating)}  #{r.id}")
            out.append(r.text.strip())
            out.append("")
    return "\n".join(out).rstrip() + "\n"
