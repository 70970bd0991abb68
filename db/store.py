"""The service layer: everything the bot, the terminal app and the trainer store or read.

Callers use `Store` only (plain values and frozen dataclasses in and out; never a Session).
Every method is one transaction. Errors meant for the user are `ShirenError`s:

- `NotFoundError` (also a LookupError): no such user / poem / adapter / run;
- `ForbiddenError` (also a PermissionError): e.g. rating a poem that is not yours;
- `InvalidValueError` (also a ValueError): stars out of 1..5, an unknown setting or status, ...;
- `db.migrate.SchemaError`: the schema is not at head and `upgrade=False` (names `shiren db upgrade`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.types import FORMS, Poem, PoemRequest, ShirenError
from db import migrate
from db.engine import is_sqlite, make_engine, safe_url, session_scope
from db.migrate import SchemaError
from db.models import (
    ADAPTER_STATUSES,
    SCRIPTS,
    USER_SOURCES,
    Adapter,
    BotLease,
    BotState,
    Rating,
    Request,
    TrainingRun,
    User,
    utcnow,
)
from db.models import Poem as PoemRow

__all__ = [
    "AdapterRecord",
    "ForbiddenError",
    "InvalidValueError",
    "LeaseRecord",
    "NotFoundError",
    "PoemRecord",
    "RatedPoem",
    "RunRecord",
    "SchemaError",
    "Store",
    "StoreError",
    "UserSettings",
    "open_store",
]


class StoreError(ShirenError):
    """Base of the storage layer's errors."""


class NotFoundError(StoreError, LookupError):
    pass


class ForbiddenError(StoreError, PermissionError):
    pass


class InvalidValueError(StoreError, ValueError):
    pass


@dataclass(frozen=True)
class UserSettings:
    default_form: str = "七绝"
    script: str = "simplified"  # or "traditional"
    lang: str = "zh"
    card_default: bool = False  # poems come as picture cards (the bot's /settings)


@dataclass(frozen=True)
class PoemRecord:
    id: int
    user_id: int
    request: PoemRequest
    text: str
    form: str
    title: str
    cipai: str
    scores: dict[str, Any]
    model_version: str
    adapter_version: str | None
    created: datetime
    rating: int | None  # the owner's stars, None if unrated
    logprob: float = 0.0
    revised_from: int | None = None  # the poem this one revises


@dataclass(frozen=True)
class RatedPoem:
    """One rating with its poem and request: a row of preference / feedback training data."""

    rating_id: int
    poem_id: int
    user_id: int
    stars: int
    text: str
    form: str
    title: str
    cipai: str
    request: PoemRequest
    model_version: str
    adapter_version: str | None
    logprob: float
    scores: dict[str, Any]
    rated: datetime  # when the stars were last set


@dataclass(frozen=True)
class AdapterRecord:
    id: int
    name: str
    path: str
    parent: str | None
    metrics: dict[str, Any]
    status: str
    created: datetime


@dataclass(frozen=True)
class RunRecord:
    id: int
    kind: str
    started: datetime
    finished: datetime | None
    data_counts: dict[str, Any]
    metrics: dict[str, Any] | None
    outcome: str
    error: str | None
    adapter: str | None


_SETTINGS_FIELDS = tuple(f.name for f in fields(UserSettings))
MAX_HISTORY_PAGE = 500


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    holder: str
    expires: datetime
    value: dict[str, Any]


def open_store(url: str | None = None, *, upgrade: bool = True) -> Store:
    """Open the store at `url` (None: SHIREN_DATABASE_URL or SQLite in the data dir).

    upgrade=True migrates the schema to head first; upgrade=False raises `SchemaError` naming
    `shiren db upgrade` when the schema is not at head.
    """
    return Store(url, upgrade=upgrade)


def _settings(u: User) -> UserSettings:
    return UserSettings(default_form=u.default_form, script=u.script, lang=u.lang, card_default=bool(u.card_default))


def _request_from_row(r: Request) -> PoemRequest:
    return PoemRequest(
        form=r.form,
        title=r.title,
        keywords=tuple(r.keywords or ()),
        acrostic=r.acrostic,
        first_line=r.first_line,
        cipai=r.cipai,
        n=r.n,
        temperature=r.temperature,
        top_p=r.top_p,
        seed=r.seed,
    )


def _poem_record(p: PoemRow, r: Request, stars: int | None) -> PoemRecord:
    return PoemRecord(
        id=p.id,
        user_id=r.user_id,
        request=_request_from_row(r),
        text=p.text,
        form=p.form,
        title=p.title,
        cipai=p.cipai,
        scores=dict(p.scores or {}),
        model_version=p.model_version,
        adapter_version=p.adapter_version,
        created=p.created,
        rating=stars,
        logprob=p.logprob,
        revised_from=p.revised_from,
    )


def _adapter_record(a: Adapter) -> AdapterRecord:
    return AdapterRecord(
        id=a.id,
        name=a.name,
        path=a.path,
        parent=a.parent,
        metrics=dict(a.metrics or {}),
        status=a.status,
        created=a.created,
    )


def _run_record(r: TrainingRun) -> RunRecord:
    return RunRecord(
        id=r.id,
        kind=r.kind,
        started=r.started,
        finished=r.finished,
        data_counts=dict(r.data_counts or {}),
        metrics=None if r.metrics is None else dict(r.metrics),
        outcome=r.outcome,
        error=r.error,
        adapter=r.adapter,
    )


def _like_pattern(search: str) -> str:
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


def _check_status(status: str) -> None:
    if status not in ADAPTER_STATUSES:
        raise InvalidValueError(f"Unknown adapter status {status!r}; one of: {', '.join(ADAPTER_STATUSES)}.")


class Store:
    """The database behind Shiren. Thread-safe: share one Store per process."""

    def __init__(self, url: str | None = None, *, upgrade: bool = True) -> None:
        self._engine: Engine = make_engine(url)
        self.url: str = safe_url(self._engine)
        self._sqlite = is_sqlite(self._engine)
        # SQLite has one writer at a time anyway: queueing this process's writers on a lock is
        # cheaper than having them spin on the busy timeout. (Other processes: busy timeout.)
        self._write_lock = threading.Lock() if self._sqlite else None
        try:
            if upgrade:
                migrate.upgrade(self._engine)
            else:
                migrate.require_up_to_date(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        """For migrations and tests; the app itself never needs it."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- sessions ---------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with session_scope(self._engine) as s:
            yield s

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._write_lock or nullcontext(), session_scope(self._engine, write=True) as s:
            yield s

    def _insert(self, model: type) -> Any:
        """The dialect's INSERT, for ON CONFLICT upserts (SQLite and PostgreSQL spell it the same)."""
        return (sqlite_dialect.insert if self._sqlite else pg_dialect.insert)(model)

    @staticmethod
    def _require_user(s: Session, user_id: int) -> User:
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"No user with id {user_id}.")
        return user

    # -- users ------------------------------------------------------------------------------------

    def ensure_user(self, source: str, external_id: str, display_name: str = "") -> int:
        """The id of the user (source, external_id), created if new. Idempotent and race-safe.

        A non-empty display_name replaces the stored one (people rename themselves).
        """
        if source not in USER_SOURCES:
            raise InvalidValueError(f"Unknown user source {source!r}; one of: {', '.join(USER_SOURCES)}.")
        external_id = str(external_id)
        if not external_id:
            raise InvalidValueError("A user needs an external id.")
        display_name = display_name or ""
        with self._write() as s:
            ins = self._insert(User).values(
                source=source,
                external_id=external_id,
                display_name=display_name,
                created=utcnow(),
                default_form=UserSettings.default_form,
                script=UserSettings.script,
                lang=UserSettings.lang,
                card_default=UserSettings.card_default,
            )
            ins = ins.on_conflict_do_nothing(index_elements=["source", "external_id"])
            s.execute(ins)
            user = s.scalars(select(User).where(User.source == source, User.external_id == external_id)).one()
            if display_name and user.display_name != display_name:
                user.display_name = display_name
            return user.id

    def ensure_user_settings(self, source: str, external_id: str, display_name: str = "") -> tuple[int, UserSettings]:
        """`ensure_user` and that user's settings, in one call."""
        uid = self.ensure_user(source, external_id, display_name)
        return uid, self.get_settings(uid)

    def get_settings(self, user_id: int) -> UserSettings:
        with self._read() as s:
            u = self._require_user(s, user_id)
            return _settings(u)

    def update_settings(self, user_id: int, **changes: Any) -> UserSettings:
        unknown = set(changes) - set(_SETTINGS_FIELDS)
        if unknown:
            raise InvalidValueError(
                f"Unknown setting(s): {', '.join(sorted(unknown))}; settings are {', '.join(_SETTINGS_FIELDS)}."
            )
        if "default_form" in changes and changes["default_form"] not in FORMS:
            raise InvalidValueError(f"Unknown form {changes['default_form']!r}; one of: {' '.join(FORMS)}.")
        if "script" in changes and changes["script"] not in SCRIPTS:
            raise InvalidValueError(f"Unknown script {changes['script']!r}; one of: {', '.join(SCRIPTS)}.")
        if "lang" in changes and not (isinstance(changes["lang"], str) and 0 < len(changes["lang"]) <= 16):
            raise InvalidValueError(f"Bad language code {changes['lang']!r}.")
        if "card_default" in changes and not isinstance(changes["card_default"], bool):
            raise InvalidValueError(f"card_default is true or false (got {changes['card_default']!r}).")
        with self._write() as s:
            u = self._require_user(s, user_id)
            new = replace(_settings(u), **changes)
            u.default_form, u.script, u.lang, u.card_default = new.default_form, new.script, new.lang, new.card_default
            return new

    # -- requests and poems -----------------------------------------------------------------------

    def record_poems(
        self,
        user_id: int,
        request: PoemRequest,
        poems: list[Poem],
        adapter_version: str | None = None,
    ) -> list[int]:
        """Store one request and the poems it produced, in one transaction. Returns the poem ids, in order."""
        with self._write() as s:
            self._require_user(s, user_id)
            now = utcnow()
            req = Request(
                user_id=user_id,
                form=request.form,
                title=request.title,
                keywords=list(request.keywords),
                acrostic=request.acrostic,
                first_line=request.first_line,
                cipai=request.cipai,
                n=request.n,
                temperature=float(request.temperature),
                top_p=float(request.top_p),
                seed=request.seed,
                created=now,
            )
            s.add(req)
            s.flush()
            rows = [self._poem_row(p, req.id, request.form, adapter_version, now) for p in poems]
            s.add_all(rows)
            s.flush()
            return [r.id for r in rows]

    def record_revision(self, user_id: int, source_id: int, poem: Poem, adapter_version: str | None = None) -> int:
        """Store a revision of the user's poem `source_id` as a new poem linked to it (under the source's
        request, so it keeps the acrostic, keywords and first line the revision had to keep)."""
        with self._write() as s:
            self._require_user(s, user_id)
            src = s.get(PoemRow, source_id)
            owner = None if src is None else self._owner(s, source_id)
            if src is None:
                raise NotFoundError(f"no poem {source_id}")
            if owner != user_id:
                raise ForbiddenError(f"poem {source_id} belongs to another user")
            row = self._poem_row(poem, src.request_id, src.form, adapter_version, utcnow(), revised_from=source_id)
            s.add(row)
            s.flush()
            return row.id

    @staticmethod
    def _poem_row(poem: Poem, request_id: int, form: str, adapter_version: str | None, created: datetime,
                  revised_from: int | None = None) -> PoemRow:
        """The row of a generated poem (`form` where the poem names none)."""
        return PoemRow(request_id=request_id, text=poem.text, form=poem.form or form, title=poem.title,
                       cipai=poem.cipai, model_version=poem.model_version or "", adapter_version=adapter_version,
                       scores=dict(poem.scores or {}), logprob=float(poem.logprob), created=created,
                       revised_from=revised_from)

    def revisions(self, poem_id: int) -> list[int]:
        """Ids of the poems that revise this one, oldest first."""
        with self._read() as s:
            return list(s.scalars(select(PoemRow.id).where(PoemRow.revised_from == poem_id).order_by(PoemRow.id)))

    @staticmethod
    def _poem_query() -> Select[Any]:
        """Poems with their request and the owner's rating."""
        return (
            select(PoemRow, Request, Rating.stars)
            .join(Request, PoemRow.request_id == Request.id)
            .outerjoin(Rating, and_(Rating.poem_id == PoemRow.id, Rating.user_id == Request.user_id))
        )

    def get_poem(self, poem_id: int) -> PoemRecord | None:
        with self._read() as s:
            row = s.execute(self._poem_query().where(PoemRow.id == poem_id)).first()
            return None if row is None else _poem_record(*row)

    def poem_owner(self, poem_id: int) -> int | None:
        with self._read() as s:
            return self._owner(s, poem_id)

    @staticmethod
    def _owner(s: Session, poem_id: int) -> int | None:
        return s.scalar(
            select(Request.user_id)
            .join(PoemRow, PoemRow.request_id == Request.id)
            .where(PoemRow.id == poem_id)
        )

    @staticmethod
    def _history_filter(user_id: int, search: str) -> list[Any]:
        conds: list[Any] = [Request.user_id == user_id]
        search = (search or "").strip()
        if search:
            pat = _like_pattern(search)
            conds.append(
                or_(
                    PoemRow.text.ilike(pat, escape="\\"),
                    PoemRow.title.ilike(pat, escape="\\"),
                    Request.title.ilike(pat, escape="\\"),
                )
            )
        return conds

    def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, search: str = ""
    ) -> list[PoemRecord]:
        """The user's poems, newest first; `search` matches the poem's text or title (case-insensitive)."""
        if limit < 0 or offset < 0:
            raise InvalidValueError("limit and offset must not be negative.")
        limit = min(limit, MAX_HISTORY_PAGE)
        q = (
            self._poem_query()
            .where(*self._history_filter(user_id, search))
            .order_by(PoemRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._read() as s:
            return [_poem_record(*row) for row in s.execute(q)]

    def count_history(self, user_id: int, search: str = "") -> int:
        q = (
            select(func.count(PoemRow.id))
            .join(Request, PoemRow.request_id == Request.id)
            .where(*self._history_filter(user_id, search))
        )
        with self._read() as s:
            return int(s.scalar(q) or 0)

    def delete_poem(self, user_id: int, poem_id: int) -> bool:
        """Delete one of the user's poems and its ratings. False if there is no such poem of theirs.

        Its request goes too when no other poem of it is left.
        """
        with self._write() as s:
            req_id = s.scalar(
                select(PoemRow.request_id)
                .join(Request, PoemRow.request_id == Request.id)
                .where(PoemRow.id == poem_id, Request.user_id == user_id)
            )
            if req_id is None:
                return False
            s.execute(delete(Rating).where(Rating.poem_id == poem_id))  # also done by ON DELETE CASCADE
            s.execute(delete(PoemRow).where(PoemRow.id == poem_id))
            if s.scalar(select(func.count(PoemRow.id)).where(PoemRow.request_id == req_id)) == 0:
                s.execute(delete(Request).where(Request.id == req_id))
            return True

    # -- ratings ----------------------------------------------------------------------------------

    def rate(self, user_id: int, poem_id: int, stars: int) -> None:
        """Set the user's stars (1..5) for their own poem; re-rating updates the one rating row."""
        if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
            raise InvalidValueError(f"A rating is 1 to 5 stars, not {stars!r}.")
        with self._write() as s:
            owner = self._owner(s, poem_id)
            if owner is None:
                raise NotFoundError(f"No poem with id {poem_id}.")
            if owner != user_id:
                raise ForbiddenError("You can only rate your own poems.")
            now = utcnow()
            ins = self._insert(Rating).values(
                user_id=user_id, poem_id=poem_id, stars=stars, created=now, updated=now
            )
            ins = ins.on_conflict_do_update(
                index_elements=["user_id", "poem_id"],
                set_={"stars": ins.excluded.stars, "updated": ins.excluded.updated},
            )
            s.execute(ins)

    # -- privacy ----------------------------------------------------------------------------------

    def export_user(self, user_id: int) -> dict[str, Any]:
        """Everything stored about the user, JSON-able (timestamps as ISO 8601 strings)."""
        with self._read() as s:
            u = self._require_user(s, user_id)
            requests = s.scalars(select(Request).where(Request.user_id == user_id).order_by(Request.id)).all()
            poems = s.scalars(
                select(PoemRow)
                .join(Request, PoemRow.request_id == Request.id)
                .where(Request.user_id == user_id)
                .order_by(PoemRow.id)
            ).all()
            ratings = s.scalars(select(Rating).where(Rating.user_id == user_id).order_by(Rating.id)).all()
            by_request: dict[int, list[dict[str, Any]]] = {}
            for p in poems:
                by_request.setdefault(p.request_id, []).append(
                    {
                        "id": p.id,
                        "text": p.text,
                        "form": p.form,
                        "title": p.title,
                        "cipai": p.cipai,
                        "model_version": p.model_version,
                        "adapter_version": p.adapter_version,
                        "scores": p.scores,
                        "logprob": p.logprob,
                        "created": _iso(p.created),
                    }
                )
            return {
                "user": {
                    "id": u.id,
                    "source": u.source,
                    "external_id": u.external_id,
                    "display_name": u.display_name,
                    "created": _iso(u.created),
                    "settings": {"default_form": u.default_form, "script": u.script, "lang": u.lang,
                                 "card_default": bool(u.card_default)},
                },
                "requests": [
                    {
                        "id": r.id,
                        **_request_from_row(r).to_dict(),
                        "created": _iso(r.created),
                        "poems": by_request.get(r.id, []),
                    }
                    for r in requests
                ],
                "ratings": [
                    {
                        "id": r.id,
                        "poem_id": r.poem_id,
                        "stars": r.stars,
                        "created": _iso(r.created),
                        "updated": _iso(r.updated),
                    }
                    for r in ratings
                ],
            }

    def forget_user(self, user_id: int) -> bool:
        """Delete the user and everything of theirs (requests, poems, ratings). False if no such user.

        Their ratings leave the training data at once (`rated_poems` reads only existing ratings).
        """
        with self._write() as s:
            # The database cascades too; deleting explicitly keeps this right even where it would not.
            mine = select(Request.id).where(Request.user_id == user_id)
            s.execute(delete(Rating).where(Rating.user_id == user_id))
            s.execute(
                delete(Rating).where(
                    Rating.poem_id.in_(select(PoemRow.id).where(PoemRow.request_id.in_(mine)))
                )
            )
            s.execute(delete(PoemRow).where(PoemRow.request_id.in_(mine)))
            s.execute(delete(Request).where(Request.user_id == user_id))
            return s.execute(delete(User).where(User.id == user_id)).rowcount > 0

    # -- stats and training data ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._read() as s:
            active = s.scalar(select(Adapter.name).where(Adapter.status == "active"))
            return {
                "users": s.scalar(select(func.count(User.id))) or 0,
                "requests": s.scalar(select(func.count(Request.id))) or 0,
                "poems": s.scalar(select(func.count(PoemRow.id))) or 0,
                "ratings": s.scalar(select(func.count(Rating.id))) or 0,
                "adapters": s.scalar(select(func.count(Adapter.id))) or 0,
                "active_adapter": active,
            }

    def rated_poems(self, *, since_id: int = 0) -> list[RatedPoem]:
        """Ratings with id > since_id, oldest first, with their poems: feedback training data.

        Note: a re-rating updates its row in place (same id, new `rated` time).
        """
        q = (
            select(Rating, PoemRow, Request)
            .join(PoemRow, Rating.poem_id == PoemRow.id)
            .join(Request, PoemRow.request_id == Request.id)
            .where(Rating.id > since_id)
            .order_by(Rating.id)
        )
        with self._read() as s:
            return [
                RatedPoem(
                    rating_id=rt.id,
                    poem_id=p.id,
                    user_id=rt.user_id,
                    stars=rt.stars,
                    text=p.text,
                    form=p.form,
                    title=p.title,
                    cipai=p.cipai,
                    request=_request_from_row(r),
                    model_version=p.model_version,
                    adapter_version=p.adapter_version,
                    logprob=p.logprob,
                    scores=dict(p.scores or {}),
                    rated=rt.updated,
                )
                for rt, p, r in s.execute(q)
            ]

    def count_ratings(self, since_id: int = 0) -> int:
        with self._read() as s:
            return int(s.scalar(select(func.count(Rating.id)).where(Rating.id > since_id)) or 0)

    # -- adapter versions -------------------------------------------------------------------------

    def add_adapter(
        self, name: str, path: str, parent: str | None, metrics: dict[str, Any], status: str = "candidate"
    ) -> int:
        """Register an adapter version. status="active" promotes it (the previous active is retired)."""
        _check_status(status)
        if not name:
            raise InvalidValueError("An adapter needs a name.")
        try:
            with self._write() as s:
                if s.scalar(select(Adapter.id).where(Adapter.name == name)) is not None:
                    raise InvalidValueError(f"An adapter named {name!r} already exists.")
                if status == "active":
                    s.execute(update(Adapter).where(Adapter.status == "active").values(status="retired"))
                a = Adapter(
                    name=name,
                    path=str(path),
                    parent=parent,
                    metrics=dict(metrics or {}),
                    status=status,
                    created=utcnow(),
                )
                s.add(a)
                s.flush()
                return a.id
        except IntegrityError:
            raise InvalidValueError(f"An adapter named {name!r} already exists.") from None

    def list_adapters(self) -> list[AdapterRecord]:
        """All adapter versions, oldest first."""
        with self._read() as s:
            return [_adapter_record(a) for a in s.scalars(select(Adapter).order_by(Adapter.id))]

    def active_adapter(self) -> AdapterRecord | None:
        with self._read() as s:
            a = s.scalars(select(Adapter).where(Adapter.status == "active")).first()
            return None if a is None else _adapter_record(a)

    def set_adapter_status(self, name: str, status: str) -> None:
        """Set one adapter's status. Setting "active" is `promote` (the previous active is retired)."""
        _check_status(status)
        if status == "active":
            self.promote(name)
            return
        with self._write() as s:
            a = s.scalars(select(Adapter).where(Adapter.name == name)).first()
            if a is None:
                raise NotFoundError(f"No adapter named {name!r}.")
            a.status = status

    def _activate(self, s: Session, target: Adapter) -> None:
        # Retire first: the partial unique index allows one active row at any moment.
        s.execute(
            update(Adapter)
            .where(Adapter.status == "active", Adapter.id != target.id)
            .values(status="retired")
        )
        s.execute(update(Adapter).where(Adapter.id == target.id).values(status="active"))

    def promote(self, name: str) -> None:
        """Make `name` the active adapter; the previous active one becomes retired. One transaction."""
        with self._write() as s:
            a = s.scalars(select(Adapter).where(Adapter.name == name)).first()
            if a is None:
                raise NotFoundError(f"No adapter named {name!r}.")
            self._activate(s, a)

    def request_conditions(self, limit: int = 100_000) -> list[dict[str, Any]]:
        """The conditions of the most recent stored requests (title, keywords, acrostic, first line), for
        measuring the mix of request kinds users send. No user data beyond those fields."""
        with self._read() as s:
            rows = s.execute(select(Request.title, Request.keywords, Request.acrostic, Request.first_line)
                             .order_by(Request.id.desc()).limit(limit)).all()
        return [{"title": t, "keywords": k, "acrostic": a, "first_line": f} for t, k, a, f in rows]

    def retire_adapter(self, name: str) -> None:
        """Mark `name` retired (e.g. it was trained on an earlier base model). One transaction."""
        with self._write() as s:
            a = s.scalars(select(Adapter).where(Adapter.name == name)).first()
            if a is None:
                raise NotFoundError(f"No adapter named {name!r}.")
            a.status = "retired"

    def rollback(self) -> AdapterRecord | None:
        """Re-activate the active adapter's nearest retired ancestor (following `parent`); the
        active one becomes retired. Returns the re-activated adapter, or None (nothing changed)
        when there is no active adapter or no retired ancestor.
        """
        with self._write() as s:
            active = s.scalars(select(Adapter).where(Adapter.status == "active")).first()
            if active is None:
                return None
            seen = {active.name}
            parent = active.parent
            while parent and parent not in seen:
                seen.add(parent)
                a = s.scalars(select(Adapter).where(Adapter.name == parent)).first()
                if a is None:
                    return None
                if a.status == "retired":
                    self._activate(s, a)
                    s.refresh(a)
                    return _adapter_record(a)
                parent = a.parent
            return None

    # -- training runs ----------------------------------------------------------------------------

    def start_run(self, kind: str, data_counts: dict[str, Any]) -> int:
        """Record the start of a training run (outcome "running"). Returns its id."""
        if not kind:
            raise InvalidValueError("A training run needs a kind.")
        with self._write() as s:
            run = TrainingRun(
                kind=kind, started=utcnow(), data_counts=dict(data_counts or {}), outcome="running"
            )
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self,
        run_id: int,
        outcome: str,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
        adapter: str | None = None,
    ) -> None:
        if not outcome:
            raise InvalidValueError("A finished run needs an outcome.")
        with self._write() as s:
            run = s.get(TrainingRun, run_id)
            if run is None:
                raise NotFoundError(f"No training run with id {run_id}.")
            run.finished = utcnow()
            run.outcome = outcome
            run.metrics = None if metrics is None else dict(metrics)
            run.error = error
            run.adapter = adapter

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """The newest `limit` training runs, newest first."""
        with self._read() as s:
            q = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(max(0, limit))
            return [_run_record(r) for r in s.scalars(q)]

    # -- the bot's shared state (several workers, one database) ----------------------------------

    def find_settings(self, source: str, external_id: str) -> UserSettings | None:
        """The settings of an existing user, or None (nobody is created)."""
        with self._read() as s:
            u = s.scalars(select(User).where(User.source == source, User.external_id == str(external_id))).first()
            return _settings(u) if u is not None else None

    def get_state(self, user_id: int, kind: str) -> dict[str, Any] | None:
        """The user's bot state of this kind, or None when absent or expired."""
        with self._read() as s:
            row = s.get(BotState, (user_id, kind))
            if row is None or (row.expires is not None and row.expires <= utcnow()):
                return None
            return dict(row.value)

    def put_state(self, user_id: int, kind: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        """Set the user's bot state of this kind (replacing it), expiring after ttl_s (None: never)."""
        expires = utcnow() + timedelta(seconds=ttl_s) if ttl_s is not None else None
        with self._write() as s:
            self._require_user(s, user_id)
            ins = self._insert(BotState).values(user_id=user_id, kind=kind, value=dict(value), expires=expires)
            s.execute(ins.on_conflict_do_update(index_elements=["user_id", "kind"],
                                                set_={"value": ins.excluded.value, "expires": ins.excluded.expires}))

    def pop_state(self, user_id: int, kind: str) -> dict[str, Any] | None:
        """Delete the user's bot state of this kind and return it (None when absent or expired).
        Of two workers popping the same state at once, exactly one gets it."""
        with self._write() as s:
            row = s.scalars(select(BotState).where(BotState.user_id == user_id, BotState.kind == kind)
                            .with_for_update()).first()
            if row is None:
                return None
            value, expired = dict(row.value), row.expires is not None and row.expires <= utcnow()
            gone = s.execute(delete(BotState).where(BotState.user_id == user_id, BotState.kind == kind)).rowcount
            return None if expired or not gone else value

    def claim_state(self, user_id: int, kind: str, ttl_s: float, value: dict[str, Any] | None = None) -> bool:
        """Create the user's bot state of this kind unless a live one exists: True when this call made it
        (a per-user mutex across workers, e.g. one card at a time). Release with `pop_state`."""
        now = utcnow()
        with self._write() as s:
            self._require_user(s, user_id)
            token = uuid.uuid4().hex
            ins = self._insert(BotState).values(user_id=user_id, kind=kind, value={**(value or {}), "claim": token},
                                                expires=now + timedelta(seconds=ttl_s))
            s.execute(ins.on_conflict_do_update(
                index_elements=["user_id", "kind"],
                set_={"value": ins.excluded.value, "expires": ins.excluded.expires},
                where=BotState.expires <= now))
            row = s.scalars(select(BotState).where(BotState.user_id == user_id, BotState.kind == kind)).one()
            s.refresh(row)
            return row.value.get("claim") == token

    def raise_state(self, user_id: int, kind: str, n: int, ttl_s: float | None = None) -> int:
        """Keep the largest `n` seen for this kind (e.g. the newest inline query's update id); returns it."""
        with self._write() as s:
            self._require_user(s, user_id)
            expires = utcnow() + timedelta(seconds=ttl_s) if ttl_s is not None else None
            s.execute(self._insert(BotState).values(user_id=user_id, kind=kind, value={"n": n}, expires=expires)
                      .on_conflict_do_nothing(index_elements=["user_id", "kind"]))
            row = s.scalars(select(BotState).where(BotState.user_id == user_id, BotState.kind == kind)
                            .with_for_update()).one()
            best = max(int(row.value.get("n", 0)), n)
            row.value, row.expires = {"n": best}, expires
            return best

    def take_token(self, user_id: int, burst: int, per_minute: float) -> float:
        """One request from the user's token bucket (`burst` at once, refilled at `per_minute`): 0.0
        when allowed, else the seconds until one would be. Row-locked, so right with many workers."""
        burst, rate, now = max(1, int(burst)), float(per_minute) / 60.0, utcnow()
        with self._write() as s:
            self._require_user(s, user_id)
            s.execute(self._insert(BotState).values(user_id=user_id, kind="rate",
                                                    value={"tokens": float(burst), "t": now.timestamp()})
                      .on_conflict_do_nothing(index_elements=["user_id", "kind"]))
            row = s.scalars(select(BotState).where(BotState.user_id == user_id, BotState.kind == "rate")
                            .with_for_update()).one()
            tokens = min(float(burst), float(row.value["tokens"]) + max(0.0, now.timestamp() - row.value["t"]) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate if rate > 0 else float("inf")
            row.value = {"tokens": tokens, "t": now.timestamp()}
            return wait

    def refund_token(self, user_id: int, burst: int) -> None:
        """Give a token back (the request was refused for another reason, e.g. busy)."""
        with self._write() as s:
            row = s.scalars(select(BotState).where(BotState.user_id == user_id, BotState.kind == "rate")
                            .with_for_update()).first()
            if row is not None:
                row.value = {"tokens": min(float(max(1, burst)), float(row.value["tokens"]) + 1.0), "t": row.value["t"]}

    def acquire_lease(self, name: str, holder: str, ttl_s: float, value: dict[str, Any] | None = None) -> bool:
        """Take the lease `name` for `holder` (or renew it when `holder` has it) unless another holder's
        is still live. True when `holder` holds it for the next ttl_s seconds."""
        now = utcnow()
        with self._write() as s:
            ins = self._insert(BotLease).values(name=name, holder=holder, expires=now + timedelta(seconds=ttl_s),
                                                value=dict(value or {}))
            s.execute(ins.on_conflict_do_update(
                index_elements=["name"],
                set_={"holder": ins.excluded.holder, "expires": ins.excluded.expires, "value": ins.excluded.value},
                where=or_(BotLease.expires <= now, BotLease.holder == holder)))
            row = s.scalars(select(BotLease).where(BotLease.name == name)).one()
            return row.holder == holder and row.expires > now

    def release_lease(self, name: str, holder: str | None = None) -> bool:
        """Drop the lease (only if `holder` holds it, when given). True when a row went."""
        with self._write() as s:
            q = delete(BotLease).where(BotLease.name == name)
            if holder is not None:
                q = q.where(BotLease.holder == holder)
            return s.execute(q).rowcount > 0

    def purge_leases(self, prefix: str) -> int:
        """Delete the expired leases named `prefix…`; how many went."""
        with self._write() as s:
            return s.execute(delete(BotLease).where(BotLease.name.startswith(prefix, autoescape=True),
                                                    BotLease.expires <= utcnow())).rowcount

    def set_lease_value(self, name: str, value: dict[str, Any]) -> None:
        with self._write() as s:
            s.execute(update(BotLease).where(BotLease.name == name).values(value=dict(value)))

    def leases(self, prefix: str, *, live: bool = True) -> list[LeaseRecord]:
        """The leases whose names start with `prefix` (only unexpired ones when live), by name."""
        with self._read() as s:
            q = select(BotLease).where(BotLease.name.startswith(prefix, autoescape=True)).order_by(BotLease.name)
            if live:
                q = q.where(BotLease.expires > utcnow())
            return [LeaseRecord(r.name, r.holder, r.expires, dict(r.value)) for r in s.scalars(q)]

    def acquire_slot(self, prefix: str, holder: str, limit: int, ttl_s: float) -> str | None:
        """One of at most `limit` live leases named `prefix…` (the global cap on generations in flight,
        counted across all workers): its name, or None when `limit` are live. The new row is committed
        before counting, so two workers racing for the last slot never both get it (at worst neither
        does). A dead worker's slots expire after ttl_s."""
        name = f"{prefix}{uuid.uuid4().hex}"
        now = utcnow()
        with self._write() as s:
            s.execute(delete(BotLease).where(BotLease.name.startswith(prefix, autoescape=True),
                                             BotLease.expires <= now))
            s.add(BotLease(name=name, holder=holder, expires=now + timedelta(seconds=ttl_s), value={}))
        with self._read() as s:
            n = s.scalar(select(func.count()).select_from(BotLease)
                         .where(BotLease.name.startswith(prefix, autoescape=True), BotLease.expires > utcnow()))
        if n > max(1, int(limit)):
            self.release_lease(name)
            return None
        return name
