"""词牌 structures derived from 全宋词 (see core/data/gelv/SOURCES.md).

Each 词牌 has one or more patterns (the common variants, most common first). A pattern is a sequence
of clauses; each clause has a length, the punctuation after it, whether its last char rhymes, and a
tone mark per position (平 / 仄 where >= 85% of the poems agree, 中 otherwise).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from core.types import RequestError


@dataclass(frozen=True)
class Clause:
    length: int
    punct: str  # "，" / "。" / "；"
    rhyme: bool
    tones: str = ""  # per-position marks over 平/仄/中

    def to_dict(self) -> dict[str, Any]:
        return {"length": self.length, "punct": self.punct, "rhyme": self.rhyme, "tones": self.tones}


@dataclass(frozen=True)
class CipaiPattern:
    name: str
    clauses: tuple[Clause, ...]
    count: int  # poems in 全宋词 following it
    rhyme_tone: str  # "平" / "仄" / "mixed"
    total: int = 0  # poems of this 词牌 in 全宋词 (all variants)
    # 叠句: clauses that repeat the end of the clause before (如梦令's 「知否，知否」), as most poems do
    repeats: tuple[int, ...] = ()

    @property
    def text_length(self) -> int:
        return sum(c.length for c in self.clauses)

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(c.length for c in self.clauses)

    def describe(self) -> str:
        return " ".join(f"{c.tones}{c.punct}{'韵' if c.rhyme else ''}" for c in self.clauses)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "count": self.count, "rhyme_tone": self.rhyme_tone,
            "text_length": self.text_length, "clauses": [c.to_dict() for c in self.clauses],
            "repeats": list(self.repeats),
        }


_DATA: dict[str, Any] | None = None
_CACHE: dict[str, list[CipaiPattern]] = {}
_BY_SIG: dict[tuple[int, ...], list[str]] | None = None


def _load() -> dict[str, Any]:
    global _DATA
    if _DATA is None:
        _DATA = json.loads(resources.files("core").joinpath("data/gelv/cipai.json").read_text(encoding="utf-8"))
    return _DATA


def _parse_clause(s: str) -> Clause:
    rhyme = s.endswith("*")
    if rhyme:
        s = s[:-1]
    return Clause(len(s) - 1, s[-1], rhyme, s[:-1])


def normalize_name(name: str) -> str:
    s = (name or "").strip().strip("《》〈〉「」\"' ")
    for sep in ("·", "・", "•", "‧", " ", "(", "（"):
        if sep in s and s.split(sep)[0]:
            s = s.split(sep)[0]
    t2s = _load().get("t2s", {})
    return "".join(t2s.get(c, c) for c in s)


def _resolve(name: str) -> str | None:
    d = _load()
    n = normalize_name(name)
    if n in d["cipai"]:
        return n
    return d["aliases"].get(n)


def cipai_patterns(name: str) -> list[CipaiPattern]:
    """The patterns of a 词牌, most common first. RequestError for an unknown name (with suggestions)."""
    key = _resolve(name)
    if key is None:
        d = _load()
        n = normalize_name(name)
        if not n:
            raise RequestError("词牌 name is empty (e.g. 浣溪沙, 水调歌头)")
        names = list(d["cipai"]) + list(d["aliases"])
        close = difflib.get_close_matches(n, names, n=5, cutoff=0.5)
        close += [x for x in names if (n in x or x in n) and x not in close][: 5 - len(close)]
        hint = f"; did you mean {'、'.join(close)}?" if close else f"; common ones: {'、'.join(top_cipai(8))}"
        raise RequestError(f"unknown 词牌 {n!r} (not in 全宋词){hint}")
    pats = _CACHE.get(key)
    if pats is None:
        rec = _load()["cipai"][key]
        pats = [
            CipaiPattern(key, tuple(_parse_clause(c) for c in p["clauses"].split()), p["count"], p["rhyme_tone"],
                         rec["total"], tuple(p.get("repeats", ())))
            for p in rec["patterns"]
        ]
        _CACHE[key] = pats
    return list(pats)


def top_cipai(k: int = 30) -> list[str]:
    """The k most common 词牌 in 全宋词, by number of poems."""
    return list(_load()["order"][: max(0, k)])


def guess_cipai(lengths: tuple[int, ...]) -> list[str]:
    """词牌 whose common patterns have exactly these clause lengths (most common first)."""
    global _BY_SIG
    if _BY_SIG is None:
        idx: dict[tuple[int, ...], list[str]] = {}
        d = _load()
        for name in d["order"]:
            for p in d["cipai"][name]["patterns"]:
                if p["count"] < 3:
                    continue
                sig = tuple(len(c.rstrip("*")) - 1 for c in p["clauses"].split())
                idx.setdefault(sig, [])
                if name not in idx[sig]:
                    idx[sig].append(name)
        _BY_SIG = idx
    return list(_BY_SIG.get(tuple(lengths), []))
