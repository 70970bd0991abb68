"""Calibrate the 格律 checker on the regulated poems of 唐诗三百首 (and measure table coverage on 全唐诗).

    python -m training.gelv_calibration --corpus /root/shiren-cache/x/package/dist [--coverage]

For each tagged form (五言绝句 七言绝句 五言律诗 七言律诗) it prints: poems, how many have the 近体
shape, 平韵 (is_jinti), rhyme rate, the relaxed rule (一三五不论) by line and by poem, the strict rule by
poem, 粘对, 孤平 and 三平尾. "line (any)" judges each line alone against any legal line type for its
position (rhyme line or not), the way line counts are often made; "line" judges it against the one
template that fits the whole poem best (so a 失粘 poem loses half its lines).
"""

from __future__ import annotations

import argparse
import glob
import json
from collections import Counter, defaultdict
from pathlib import Path

from core.gelv import analyze, line_pattern, readings, tone_classes
from core.gelv.patterns import relaxed_positions
from core.types import RequestError

TAGS = {"五言绝句": "五绝", "七言绝句": "七绝", "五言律诗": "五律", "七言律诗": "七律"}


def _line_any_ok(line: str, rhyme_line: bool, first: bool) -> bool:
    chars = len(line)
    kinds = ("A", "B", "C", "D") if first else (("B", "D") if rhyme_line else ("A", "C"))
    pos = relaxed_positions(chars)
    for k in kinds:
        pat = line_pattern(k, chars, strict=False)
        if all((not tone_classes(line[p])) or pat[p] in tone_classes(line[p]) for p in pos):
            return True
    return False


def calibrate(corpus: Path) -> dict[str, dict]:
    poems = json.loads((corpus / "quantangshi" / "唐诗三百首.json").read_text(encoding="utf-8"))
    stats: dict[str, Counter] = defaultdict(Counter)
    for p in poems:
        form = next((TAGS[t] for t in p.get("tags", []) if t in TAGS), None)
        if form is None:
            continue
        st = stats[form]
        st["poems"] += 1
        text = "\n".join(p.get("paragraphs", []))
        try:
            an = analyze(text)
        except RequestError:
            st["error"] += 1
            continue
        if an.form in ("五绝", "七绝", "五律", "七律", "排律") or an.form in ("古绝", "古体"):
            pass
        shape = an.form == form or (an.form == "排律" and form in ("五律", "七律")) or (
            an.form in ("古绝", "古体") and len(an.lines) == (4 if "绝" in form else 8)
            and len(an.lines[0].text) == (5 if form[0] == "五" else 7))
        if not shape:
            st["other_shape"] += 1
            continue
        st["shape"] += 1
        if not an.is_jinti:
            st["ze_rhyme"] += 1
            continue
        st["jinti"] += 1
        st["rhyme"] += an.rhyme_ok
        st["lines"] += len(an.lines)
        st["relaxed_lines"] += an.relaxed_lines_ok
        st["relaxed_poems"] += an.tone_relaxed_ok
        st["strict_poems"] += an.tone_strict_ok
        st["nian_dui"] += an.nian_dui_ok
        st["gu_ping"] += len(an.gu_ping)
        st["san_ping_wei"] += len(an.san_ping_wei)
        st["first_rhymes"] += an.first_line_rhymes
        st["all_ok"] += an.verdict.startswith("合律")
        # as a reader hears it: common readings only (core.gelv.usage)
        st["rhyme_common"] += an.common_rhyme_ok
        st["relaxed_poems_common"] += an.common_tone_relaxed_ok
        st["rare_readings"] += len(an.rare_readings)
        st["poems_with_rare"] += bool(an.rare_readings)
        st["variant_chars"] += len(an.variant_chars)
        any_ok = 0
        for i, la in enumerate(an.lines):
            any_ok += _line_any_ok(la.text, i % 2 == 1, i == 0)
        st["lines_any_ok"] += any_ok
        st["poems_any_ok"] += any_ok == len(an.lines)
    return stats


def coverage(corpus: Path) -> dict[str, float]:
    total = known = grouped = 0
    for f in sorted(glob.glob(str(corpus / "quantangshi" / "poet.tang.*.json"))):
        for p in json.loads(Path(f).read_text(encoding="utf-8")):
            for para in p.get("paragraphs", []):
                for ch in para:
                    o = ord(ch)
                    if not (0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or o >= 0x20000):
                        continue
                    total += 1
                    rd = readings(ch)
                    if rd:
                        known += 1
                        if any(r.group for r in rd):
                            grouped += 1
    return {"occurrences": total, "tone_known": known / max(1, total), "group_known": grouped / max(1, total)}


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "   - "


def format_table(stats: dict[str, Counter]) -> str:
    head = ("| form | poems | 近体 shape | 仄韵 | 平韵 近体 | rhyme | relaxed line | relaxed line (any) | "
            "relaxed poem | relaxed poem (any) | strict poem | 粘对 | 孤平 lines | 三平尾 lines | 合律 verdict | "
            "rhyme (common) | relaxed poem (common) | rare readings / poem | poems with a rare reading | "
            "variant chars / poem |")
    rows = [head, "|" + "---|" * 20]
    for form in ("五绝", "七绝", "五律", "七律"):
        s = stats.get(form)
        if not s:
            continue
        j = s["jinti"]
        rows.append(
            f"| {form} | {s['poems']} | {s['shape']} | {s['ze_rhyme']} | {j} | {_pct(s['rhyme'], j)} | "
            f"{_pct(s['relaxed_lines'], s['lines'])} | {_pct(s['lines_any_ok'], s['lines'])} | "
            f"{_pct(s['relaxed_poems'], j)} | {_pct(s['poems_any_ok'], j)} | {_pct(s['strict_poems'], j)} | "
            f"{_pct(s['nian_dui'], j)} | {s['gu_ping']} | {s['san_ping_wei']} | {_pct(s['all_ok'], j)} | "
            f"{_pct(s['rhyme_common'], j)} | {_pct(s['relaxed_poems_common'], j)} | "
            f"{s['rare_readings'] / max(1, j):.3f} | {_pct(s['poems_with_rare'], j)} | "
            f"{s['variant_chars'] / max(1, j):.3f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Calibrate the 格律 checker on 唐诗三百首.")
    ap.add_argument("--corpus", default="/root/shiren-cache/x/package/dist")
    ap.add_argument("--coverage", action="store_true", help="also measure table coverage on all of 全唐诗")
    args = ap.parse_args(argv)
    corpus = Path(args.corpus)
    stats = calibrate(corpus)
    print(format_table(stats))
    if args.coverage:
        c = coverage(corpus)
        print(f"\ncoverage on 全唐诗: {c['occurrences']} char occurrences; tone known {100 * c['tone_known']:.2f}%, "
              f"rhyme group known {100 * c['group_known']:.2f}%")


if __name__ == "__main__":
    main()
