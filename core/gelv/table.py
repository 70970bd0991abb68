"""Character data: 平水韵 rhyme groups and tone classes for every character.

The data file `core/data/gelv/pingshui.json` (built by `training/build_gelv_data.py`, see SOURCES.md)
holds the 106 groups as strings of (traditional / old-form) characters, a variant map (simplified and
variant forms -> table forms whose readings they take) and a tone-only list for characters no table
knows. It is loaded lazily on first use; lookups are dict hits.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

# The 106 groups, in order, with their section (上平 / 下平 / 上 / 去 / 入).
_SECTIONS: dict[str, str] = {
    "上平": "一东 二冬 三江 四支 五微 六鱼 七虞 八齐 九佳 十灰 十一真 十二文 十三元 十四寒 十五删",
    "下平": "一先 二萧 三肴 四豪 五歌 六麻 七阳 八庚 九青 十蒸 十一尤 十二侵 十三覃 十四盐 十五咸",
    "上": "一董 二肿 三讲 四纸 五尾 六语 七麌 八荠 九蟹 十贿 十一轸 十二吻 十三阮 十四旱 十五潸 十六铣 "
    "十七筱 十八巧 十九皓 二十哿 二十一马 二十二养 二十三梗 二十四迥 二十五有 二十六寝 二十七感 二十八琰 二十九豏",
    "去": "一送 二宋 三绛 四寘 五未 六御 七遇 八霁 九泰 十卦 十一队 十二震 十三问 十四愿 十五翰 十六谏 十七霰 "
    "十八啸 十九效 二十号 二十一个 二十二祃 二十三漾 二十四敬 二十五径 二十六宥 二十七沁 二十八勘 二十九艳 三十陷",
    "入": "一屋 二沃 三觉 四质 五物 六月 七曷 八黠 九屑 十药 十一陌 十二锡 十三职 十四缉 十五合 十六叶 十七洽",
}
GROUP_SECTION: dict[str, str] = {g: sec for sec, names in _SECTIONS.items() for g in names.split()}
GROUP_NAMES: tuple[str, ...] = tuple(GROUP_SECTION)
PING_GROUP_NAMES: tuple[str, ...] = GROUP_NAMES[:30]
_PING = frozenset(PING_GROUP_NAMES)

# 平水韵 group -> 词林正韵 部 (groups split between two 部 map to both). Used for 词 rhyme.
_CILIN_TAILS = {
    1: "东冬董肿送宋", 2: "江阳讲养绛漾", 3: "支微齐灰纸尾荠贿寘未霁泰队", 4: "鱼虞语麌御遇",
    5: "佳灰蟹贿泰卦队", 6: "真文元轸吻阮震问愿", 7: "元寒删先阮旱潸铣愿翰谏霰", 8: "萧肴豪筱巧皓啸效号",
    9: "歌哿个", 10: "佳麻马卦祃", 11: "庚青蒸梗迥敬径", 12: "尤有宥", 13: "侵寝沁", 14: "覃盐咸感琰豏勘艳陷",
    15: "屋沃", 16: "觉药", 17: "质陌锡职缉", 18: "物月曷黠屑叶", 19: "合洽",
}


def _cilin(group: str) -> frozenset[int]:
    sec, tail = GROUP_SECTION[group], group[-1]
    return frozenset(
        bu for bu, tails in _CILIN_TAILS.items() if tail in tails and ((bu >= 15) == (sec == "入"))
    )


CILIN_BU: dict[str, frozenset[int]] = {g: _cilin(g) for g in GROUP_NAMES}


@dataclass(frozen=True)
class Reading:
    """One reading of a character: its 平水韵 group ("" when only the tone is known)."""

    group: str
    tone: str  # "平" | "仄"
    shengdiao: str  # "平" | "上" | "去" | "入" ("" when unknown)

    @property
    def section(self) -> str:
        """上平 / 下平 / 上 / 去 / 入 ("" for a tone-only reading)."""
        return GROUP_SECTION.get(self.group, "")


_READINGS: dict[str, tuple[Reading, ...]] | None = None
_TONES: dict[str, frozenset[str]] = {}
_PING_GROUPS: dict[str, frozenset[str]] = {}
_META: dict[str, Any] = {}
_EMPTY: frozenset[str] = frozenset()


def _load() -> dict[str, tuple[Reading, ...]]:
    global _READINGS
    if _READINGS is not None:
        return _READINGS
    raw = json.loads(resources.files("core").joinpath("data/gelv/pingshui.json").read_text(encoding="utf-8"))
    rd: dict[str, tuple[Reading, ...]] = {}
    objs = {}
    for g, chars in raw["groups"].items():
        sec = GROUP_SECTION[g]
        r = objs[g] = Reading(g, "平" if g in _PING else "仄", "平" if sec in ("上平", "下平") else sec)
        for ch in chars:
            prev = rd.get(ch)
            rd[ch] = (*prev, r) if prev else (r,)
    for tone, chars in raw.get("tone_only", {}).items():
        r = Reading("", tone, "平" if tone == "平" else "")
        for ch in chars:
            rd.setdefault(ch, (r,))
    for var, targets in raw.get("variants", {}).items():
        merged = list(rd.get(var, ()))
        for t in targets:
            for r in rd.get(t, ()):
                if r not in merged:
                    merged.append(r)
        if merged:
            rd[var] = tuple(merged)
    _META["variants"] = raw.get("variants", {})
    _READINGS = rd
    return rd


def _norm(ch: str) -> str:
    if len(ch) == 1 and "\uf900" <= ch <= "\ufaff":  # CJK compatibility ideographs
        return unicodedata.normalize("NFKC", ch)
    return ch


def readings(ch: str) -> tuple[Reading, ...]:
    """All readings of `ch` (simplified, traditional or variant form); () if unknown."""
    rd = _READINGS if _READINGS is not None else _load()
    r = rd.get(ch)
    if r is None:
        r = rd.get(_norm(ch), ())
    return r


def tone_classes(ch: str) -> frozenset[str]:
    """Subset of {"平", "仄"}; empty when the character is unknown."""
    t = _TONES.get(ch)
    if t is None:
        t = frozenset(r.tone for r in readings(ch))
        _TONES[ch] = t
    return t


def ping_groups(ch: str) -> frozenset[str]:
    """The 平声 rhyme groups of `ch` (empty if it has no 平 reading with a known group)."""
    g = _PING_GROUPS.get(ch)
    if g is None:
        g = frozenset(r.group for r in readings(ch) if r.tone == "平" and r.group)
        _PING_GROUPS[ch] = g
    return g


def groups(ch: str) -> frozenset[str]:
    """All known rhyme groups of `ch` (any tone)."""
    return frozenset(r.group for r in readings(ch) if r.group)


def cilin_bu(ch: str, tone: str | None = None) -> frozenset[int]:
    """词林正韵 部 numbers of `ch` (derived from its 平水韵 groups); with `tone` ("平" / "仄"), only those
    of its readings in that tone — a 多音字's 仄 reading may sit in another 部 than its 平 one, and a
    rhyme in a 仄 position must rhyme by its 仄 reading."""
    out: set[int] = set()
    for r in readings(ch):
        if r.group and (tone in (None, "中") or r.tone == tone):
            out |= CILIN_BU[r.group]
    return frozenset(out)


def variant_targets(ch: str) -> str:
    """The table forms whose readings a variant / simplified form takes ("" if none)."""
    _load()
    return _META["variants"].get(ch, "")


def is_known(ch: str) -> bool:
    return bool(readings(ch))
