"""Poem-card test support: the poems every test renders, and a pixel comparison that forgives tiny
anti-aliasing differences but not a changed character, colour or layout.

References live in tests/fixtures/cards/ (downscaled to REF_SIDE px on the long side, so each is a
few tens of KB); `SHIREN_UPDATE_CARDS=1` rewrites them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops

from core.card import CardPoem

REF_DIR = Path(__file__).parent / "fixtures" / "cards"
REF_SIDE = 320
BLOCK = 8  # the comparison looks at 8×8-pixel blocks of the downscaled images
MAX_BLOCK_DIFF = 10.0  # the worst block's mean difference (0–255) a match may have
MAX_MEAN_DIFF = 1.5  # and the whole image's
UPDATE = os.environ.get("SHIREN_UPDATE_CARDS") == "1"

POEMS: dict[str, CardPoem] = {
    "wujue": CardPoem("空山不见人，但闻人语响。\n返景入深林，复照青苔上。", "五绝", "鹿柴"),
    "qijue": CardPoem("秦时明月汉时关，万里长征人未还。\n但使龙城飞将在，不教胡马度阴山。", "七绝", "出塞"),
    "wulv": CardPoem("国破山河在，城春草木深。\n感时花溅泪，恨别鸟惊心。\n烽火连三月，家书抵万金。\n白头搔更短，浑欲不胜簪。",
                     "五律", "春望"),
    "qilv": CardPoem("风急天高猿啸哀，渚清沙白鸟飞回。\n无边落木萧萧下，不尽长江滚滚来。\n"
                     "万里悲秋常作客，百年多病独登台。\n艰难苦恨繁霜鬓，潦倒新停浊酒杯。", "七律", "登高"),
    "ci_short": CardPoem("昨夜雨疏风骤，浓睡不消残酒。试问卷帘人，却道海棠依旧。知否，知否，应是绿肥红瘦。",
                         "词", "", "如梦令"),
    "ci_long": CardPoem("大江东去，浪淘尽，千古风流人物。故垒西边，人道是，三国周郎赤壁。乱石穿空，惊涛拍岸，"
                        "卷起千堆雪。江山如画，一时多少豪杰。\n遥想公瑾当年，小乔初嫁了，雄姿英发。羽扇纶巾，谈笑间，"
                        "樯橹灰飞烟灭。故国神游，多情应笑我，早生华发。人生如梦，一尊还酹江月。", "词", "赤壁怀古", "念奴娇"),
}


@dataclass(frozen=True)
class Variant:
    poem: str
    layout: str
    script: str
    tones: bool

    @property
    def name(self) -> str:
        return f"{self.poem}-{self.layout[0]}-{self.script[:4]}-{'tones' if self.tones else 'ink'}"


def variants() -> list[Variant]:
    """Each poem in both layouts, both scripts, with and without tones: four cards per poem, chosen so
    that together the poems cover all eight (layout, script, tones) combinations."""
    a = [("vertical", "simplified", True), ("vertical", "traditional", False),
         ("horizontal", "simplified", False), ("horizontal", "traditional", True)]
    b = [(lay, script, not tones) for lay, script, tones in a]
    return [Variant(name, *combo) for i, name in enumerate(POEMS) for combo in (a if i % 2 == 0 else b)]


def downscale(img: Image.Image) -> Image.Image:
    img = img.convert("RGB")
    scale = REF_SIDE / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class Diff:
    same_size: bool
    mean: float = 0.0
    worst_block: float = 0.0

    @property
    def ok(self) -> bool:
        return self.same_size and self.mean <= MAX_MEAN_DIFF and self.worst_block <= MAX_BLOCK_DIFF

    def __str__(self) -> str:
        if not self.same_size:
            return "different sizes"
        return f"mean {self.mean:.2f} (≤ {MAX_MEAN_DIFF}), worst {BLOCK}px block {self.worst_block:.1f} (≤ {MAX_BLOCK_DIFF})"


def compare(actual: Image.Image, reference: Image.Image) -> Diff:
    """Both downscaled to the reference size; per-pixel difference averaged over RGB, then over blocks."""
    a = downscale(actual) if max(actual.size) != REF_SIDE else actual.convert("RGB")
    r = reference.convert("RGB")
    if a.size != r.size:
        return Diff(False)
    d = ImageChops.difference(a, r).convert("L")  # L = weighted mean of the channel differences
    hist = d.histogram()
    mean = sum(i * n for i, n in enumerate(hist)) / (d.width * d.height)
    blocks = d.resize((max(1, d.width // BLOCK), max(1, d.height // BLOCK)), Image.Resampling.BOX)
    return Diff(True, mean, float(blocks.getextrema()[1]))
