"""Readings as a reader hears them: which readings of a 多音字 real poets commonly use, where.

`core/data/gelv/readings.json` (built by `training/build_readings.py` from the train split) counts, for
each character with several readings, its uses at the tonal positions of regulated verse (which tone)
and at its rhyme positions (which 平水韵 group). A reading is *rare* at a kind of position when the
one-sided 95% upper bound of its share there is below that kind's threshold (chosen from the data:
SOURCES.md); every other reading, and every reading of a character without such data, is *common*.

The `common_*` functions are the common-reading versions of core.gelv.table's lookups. They are the
one definition the decoder's rules (core.generate.VocabIndex, core.plan) and the checker's
common-reading verdict are built from. Lookups take any form (simplified, traditional, variant).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from core.gelv.table import CILIN_BU, GROUP_SECTION, ping_groups, readings, tone_classes, variant_targets
from core.variants import standard_form

_Z95 = 1.6449  # one-sided 95%
_DATA: dict[str, Any] | None = None
_ALIAS: dict[str, str] = {}
_TONES: dict[str, frozenset[str]] = {}
_GROUPS: dict[str, frozenset[str]] = {}
UNEXPLAINED = "∅"  # rhyme uses where the poem's group is none of the character's (not counted in shares)


@dataclass(frozen=True)
class Usage:
    """How often real poets use a reading at a kind of position."""

    uses: int
    of: int
    rare: bool

    @property
    def share(self) -> float:
        return self.uses / self.of if self.of else 0.0


def wilson_upper(k: int, n: int) -> float:
    """One-sided 95% upper confidence bound of a binomial share k/n (Wilson score)."""
    if n == 0:
        return 1.0
    p, z = k / n, _Z95
    den = 1 + z * z / n
    return min(1.0, (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / den)


def _load() -> dict[str, Any]:
    global _DATA
    if _DATA is None:
        raw = resources.files("core").joinpath("data/gelv/readings.json").read_text(encoding="utf-8")
        data = json.loads(raw)
        for c in set(data["tonal"]) | set(data["rhyme"]):
            for t in variant_targets(c):  # traditional / table forms read through their simplified form
                _ALIAS.setdefault(t, c)
        _DATA = data
    return _DATA


def thresholds() -> dict[str, float]:
    """{"tonal": …, "rhyme": …}: the share under which a reading is rare at that kind of position."""
    return dict(_load()["threshold"])


def _key(ch: str) -> str:
    d = _load()
    s = standard_form(ch)
    if s in d["tonal"] or s in d["rhyme"]:
        return s
    return _ALIAS.get(ch, s)


def tone_usage(ch: str, tone: str) -> Usage | None:
    """Uses of `ch` in `tone` at tonal positions (None when the character has no such data)."""
    d = _load()
    row = d["tonal"].get(_key(ch))
    if row is None:
        return None
    k, n = row[0 if tone == "平" else 1], row[0] + row[1]
    return Usage(k, n, wilson_upper(k, n) < d["threshold"]["tonal"])


def group_usage(ch: str, group: str) -> Usage | None:
    """Uses of `ch` as a rhyme of `group` among its rhymes in one of its groups (None: no data)."""
    d = _load()
    row = d["rhyme"].get(_key(ch))
    if row is None:
        return None
    n = sum(v for g, v in row.items() if g != UNEXPLAINED)
    k = row.get(group, 0)
    return Usage(k, n, wilson_upper(k, n) < d["threshold"]["rhyme"])


def common_tone_classes(ch: str) -> frozenset[str]:
    """The tones `ch` commonly takes at tonal positions (a subset of tone_classes; never empty for a
    known character)."""
    t = _TONES.get(ch)
    if t is None:
        full = tone_classes(ch)
        t = full
        if len(full) == 2:
            kept = frozenset(x for x in full if not ((u := tone_usage(ch, x)) and u.rare))
            t = kept or full
        _TONES[ch] = t
    return t


def common_ping_groups(ch: str) -> frozenset[str]:
    """The 平水韵 平 groups `ch` commonly rhymes in (empty when its 平 reading is rare)."""
    g = _GROUPS.get(ch)
    if g is None:
        g = frozenset()
        if "平" in common_tone_classes(ch):
            full = ping_groups(ch)
            g = full
            if len(full) > 1:
                kept = frozenset(x for x in full if not ((u := group_usage(ch, x)) and u.rare))
                g = kept or full
        _GROUPS[ch] = g
    return g


def common_cilin_bu(ch: str, tone: str | None = None) -> frozenset[int]:
    """词林正韵 部 of `ch` through its common readings (with `tone` 平 / 仄: readings of that tone)."""
    tones = common_tone_classes(ch)
    pg = common_ping_groups(ch)
    out: set[int] = set()
    for r in readings(ch):
        if not r.group or r.tone not in tones or (tone not in (None, "中") and r.tone != tone):
            continue
        if r.tone == "平" and r.group not in pg:
            continue
        out |= CILIN_BU[r.group]
    return frozenset(out)


def reading_label(ch: str, tone: str) -> str:
    """The groups of `ch`'s readings in `tone`, for messages (e.g. 「深」仄: 去声二十七沁)."""
    gs = sorted({r.group for r in readings(ch) if r.tone == tone and r.group})
    sec = {"平": "平声", "上": "上声", "去": "去声", "入": "入声"}
    return "、".join(f"{sec.get(GROUP_SECTION[g][-1], '')}{g}" for g in gs) or tone
