"""Build `core/data/gelv/readings.json`: how real poets use each 多音字 at the positions 格律 checks.

    python -m training.build_readings [--dataset DIR]   # default: the data dir's dataset

From the regulated verse of the train split (五绝 七绝 五律 七律 排律; variants normalised, see
core.variants), two tables for the characters with more than one reading:

* **rhyme** — at the rhyme positions (even line ends; the first line's end when it rhymes), which
  平水韵 group the character rhymes in. The poem's group is decided by its *other* even-line rhymes
  that have a single 平 reading: they must all agree on one group, and the first line never decides it
  (a first line may borrow a neighbouring group, 借邻韵). A first-line rhyme is counted only when it
  rhymes in that group (a borrowed or 仄 first-line end says nothing about which group it rhymes in).
* **tonal** — at the tonal positions of the relaxed rule (2nd / 4th / 6th characters and line ends),
  which tone the character takes. Only poems whose template the single-tone characters fix are used:
  the templates (of the four) that no single-tone character contradicts must all agree on the mark at
  that position. The 拗 slots are skipped, since real poets break the mark there by rule: the 4th char
  of the five-char core of A lines (仄仄平平仄 → 仄仄平仄仄, 大拗) and C lines (平平平仄仄 → 平平仄平仄, 特拗).
  A 失粘 poem or one with an unmodelled 拗 fits no template and is left out. 拗救's other changes
  touch only the free 1st / 3rd positions, which are not counted.

The method's own noise (text errors, table gaps, templates fixed wrongly) is measured the same way
on single-reading characters, leave-one-out: how often one of them disagrees with what the others
fix. A reading is **rare** where the one-sided 95% Wilson upper bound of its share of the character's
uses at that kind of position is below that kind's threshold; otherwise it is common (so a reading is
never called rare for want of data). The thresholds come from the data (`choose_thresholds`, SOURCES.md).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

from core.gelv.patterns import jinti_templates, relaxed_positions
from core.gelv.table import ping_groups, tone_classes
from core.gelv.usage import wilson_upper
from core.variants import normalise
from training.clean import clauses

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "core" / "data" / "gelv" / "readings.json"
FORMS = ("五绝", "七绝", "五律", "七律", "排律")


def _checked(chars: int, types: tuple[str, ...]) -> list[list[int]]:
    """Per line, the positions counted: relaxed positions minus the 拗 slot of A and C lines."""
    rel = relaxed_positions(chars)
    ao = chars - 2  # the 4th char of the five-char core
    return [[p for p in rel if not (p == ao and t in "AC")] for t in types]


def _single_tone(ch: str) -> str | None:
    t = tone_classes(ch)
    return next(iter(t)) if len(t) == 1 else None


def _single_group(ch: str) -> str | None:
    g = ping_groups(ch)
    return next(iter(g)) if len(g) == 1 and tone_classes(ch) == {"平"} else None


class Stats:
    def __init__(self) -> None:
        self.tonal: dict[str, Counter] = defaultdict(Counter)  # char -> {平: n, 仄: n}
        self.rhyme: dict[str, Counter] = defaultdict(Counter)  # char -> {group: n}
        self.rhyme_unexplained: Counter = Counter()  # char rhymes where the poem's group is none of its
        self.noise = Counter()  # tonal_n, tonal_bad, rhyme_n, rhyme_bad (single-reading chars, leave-one-out)
        self.poems = Counter()

    # ---- rhyme
    def rhyme_poem(self, lines: list[str]) -> None:
        n = len(lines)
        ends = [lines[i][-1] for i in range(1, n, 2)]
        if sum("平" in tone_classes(c) for c in ends) * 2 <= len(ends):
            return  # 仄韵: not 近体
        self.poems["rhyme"] += 1
        singles = [_single_group(c) for c in ends]
        for k, c in enumerate(ends):
            others = {g for j, g in enumerate(singles) if j != k and g}
            if len(others) != 1:
                continue  # no single-reading partner, or partners disagree (邻韵通押 or a table gap)
            g = next(iter(others))
            if singles[k]:  # a single-reading char: noise of the method
                self.noise["rhyme_n"] += 1
                self.noise["rhyme_bad"] += singles[k] != g
                continue
            if g in ping_groups(c):
                self.rhyme[c][g] += 1
            else:
                self.rhyme_unexplained[c] += 1
                self.rhyme[c]["∅"] += 1
        # the first line's end, when it rhymes in the group the even lines fix
        ok = {g for g in singles if g}
        c0 = lines[0][-1]
        if len(ok) == 1 and not _single_group(c0) and next(iter(ok)) in ping_groups(c0):
            self.rhyme[c0][next(iter(ok))] += 1

    # ---- tones
    def tonal_poem(self, lines: list[str]) -> bool:
        """Count tonal uses; True when some template fits the poem's single-tone characters."""
        chars, n = len(lines[0]), len(lines)
        temps = jinti_templates(chars, n)
        checked = [_checked(chars, t.types) for t in temps]
        # positions (line, pos) counted under every template: the union, marked per template
        obs: dict[tuple[int, int], list[str | None]] = {}
        for ti, t in enumerate(temps):
            for li in range(n):
                for p in checked[ti][li]:
                    obs.setdefault((li, p), [None] * len(temps))[ti] = t.full[li][p]
        singles = {(li, p): _single_tone(lines[li][p]) for (li, p) in obs}
        # mismatches of single-tone chars per template (a position a template skips never mismatches)
        bad = [[(li, p) for (li, p), marks in obs.items() if marks[ti] and singles[(li, p)]
                and singles[(li, p)] != marks[ti]] for ti in range(len(temps))]
        fits = [ti for ti in range(len(temps)) if not bad[ti]]
        if fits:
            self.poems["tonal"] += 1
        for (li, p), marks in obs.items():
            ch = lines[li][p]
            s = singles[(li, p)]
            if s:  # leave-one-out: the templates the *other* single-tone chars allow
                loo = [ti for ti in range(len(temps)) if not [x for x in bad[ti] if x != (li, p)]]
                ms = {marks[ti] for ti in loo}
                if loo and len(ms) == 1 and None not in ms:
                    self.noise["tonal_n"] += 1
                    self.noise["tonal_bad"] += s not in ms
                continue
            tc = tone_classes(ch)
            if len(tc) != 2 or not fits:
                continue
            ms = {marks[ti] for ti in fits}
            if len(ms) == 1 and None not in ms:
                self.tonal[ch][next(iter(ms))] += 1
        return bool(fits)


def collect(dataset: Path) -> Stats:
    import pyarrow.parquet as pq
    from tqdm import tqdm

    t = pq.read_table(dataset / "train.parquet", columns=["text", "form"])
    st = Stats()
    for text, form in tqdm(zip(t.column("text").to_pylist(), t.column("form").to_pylist(), strict=True),
                           total=t.num_rows, desc="readings", unit="poem", mininterval=1.0):
        if form not in FORMS:
            continue
        lines = clauses(normalise(text))
        if not lines or len({len(x) for x in lines}) != 1 or len(lines[0]) not in (5, 7) or len(lines) % 2:
            continue
        st.poems["regulated"] += 1
        # Rhymes only from poems that fit a template: in 古体 of 近体 shape 邻韵通押 is common, and
        # it would count as a group the character hardly ever rhymes in.
        if st.tonal_poem(lines):
            st.rhyme_poem(lines)
    return st


def rare(k: int, n: int, threshold: float) -> bool:
    """A reading used k times in n is rare when even the upper bound of its share is below threshold."""
    return wilson_upper(k, n) < threshold


MIN_THRESHOLD = 0.02  # below one use in fifty a reading is not one a reader expects at that position
NOISE_FACTOR = 3  # a share within a few times the method's noise cannot be told from text errors and 邻韵


def choose_thresholds(st: Stats) -> dict[str, float]:
    """Per kind of position: max(MIN_THRESHOLD, NOISE_FACTOR x the method's noise floor there). The
    well-attested second readings (WELL_ATTESTED) sit well above either; see the report."""
    out = {}
    for kind in ("tonal", "rhyme"):
        floor = st.noise[f"{kind}_bad"] / max(1, st.noise[f"{kind}_n"])
        out[kind] = round(max(MIN_THRESHOLD, NOISE_FACTOR * floor), 3)
        out[f"noise_{kind}"] = round(floor, 5)
    return out


WELL_ATTESTED = {"将": "仄", "望": "平", "看": "平", "思": "仄", "听": "仄", "过": "平", "教": "平", "醒": "平"}


def report(st: Stats, th: dict[str, float]) -> dict:
    """Coverage and the shares of the well-attested second readings."""
    multi_tone = {c for c in st.tonal}
    rare_tone = {c for c, cnt in st.tonal.items() for t in ("平", "仄")
                 if rare(cnt[t], sum(cnt.values()), th["tonal"])}
    rare_group = {c for c, cnt in st.rhyme.items() for g in ping_groups(c)
                  if rare(cnt[g], sum(cnt.values()), th["rhyme"])}
    attested = {}
    for c, t in WELL_ATTESTED.items():
        cnt = st.tonal.get(c, Counter())
        n = sum(cnt.values())
        attested[c] = {"reading": t, "uses": cnt[t], "of": n, "share": round(cnt[t] / n, 4) if n else None,
                       "rare": rare(cnt[t], n, th["tonal"])}
    return {"chars_tonal": len(multi_tone), "chars_rhyme": len(st.rhyme), "rare_tone_chars": len(rare_tone),
            "rare_group_chars": len(rare_group), "well_attested": attested, "poems": dict(st.poems),
            "noise_counts": dict(st.noise)}


def build(dataset: Path) -> dict:
    st = collect(dataset)
    th = choose_thresholds(st)
    return {
        "about": "uses of 多音字 by real poets at tonal and rhyme positions of regulated verse (train split); "
                 "built by training/build_readings.py",
        "threshold": {"tonal": th["tonal"], "rhyme": th["rhyme"]},
        "confidence": 0.95,
        "noise": {"tonal": th["noise_tonal"], "rhyme": th["noise_rhyme"]},
        "report": report(st, th),
        "tonal": {c: [cnt["平"], cnt["仄"]] for c, cnt in sorted(st.tonal.items())},
        "rhyme": {c: dict(sorted(cnt.items())) for c, cnt in sorted(st.rhyme.items())},
    }


def main(argv: list[str] | None = None) -> None:
    from core.paths import dataset_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    data = build(a.dataset or dataset_dir())
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=0, separators=(",", ":")), encoding="utf-8")
    tmp.replace(a.out)
    print(json.dumps({k: data[k] for k in ("threshold", "noise", "report")}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
