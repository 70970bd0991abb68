"""A blind reading: readers score shuffled poems, some real and some generated, without knowing which.

    python -m training.blind_test build --generated G.jsonl --real-from-test --n 40 --seed 7 --out docs/blind
    python -m training.blind_test build --generated t0.8=A.jsonl t1.0=B.jsonl --real-from-test --n 40 ...
    python -m training.blind_test score --key docs/blind/key-<ID>.json --sheets A.md B.md [--out results.md]

`build` writes `sheet-<ID>.md` (what a reader gets: a number per poem, the poem body only — no
title, no 词牌 name, no author, punctuation reduced to ，。 — and blanks for fluency, coherence and
meaning 1–5, a guess human/machine and a confidence 1–5) and `key-<ID>.json` (which number is which:
never shown to a reader). `n` poems come from each source; real poems are drawn from the test split
with the same forms (and 词牌) as the generated ones, never the poem a generated one was asked to
match. `score` reads the filled sheets back (forgiving about layout, strict about content: a sheet
with a missing, repeated or out-of-range answer is rejected with every problem listed) and reports
mean scores per source with 95% bootstrap intervals, guess accuracy, and the ROC-AUC of the guesses
(machine-ness = ± confidence; 0.5 = readers cannot tell). See docs/blind-test.md.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import statistics
import unicodedata
from collections import defaultdict
from pathlib import Path

from training.metrics import bootstrap_groups, roc_auc
from training.two_sample import canonical_text, load_poems

SCORES = ("fluency", "coherence", "meaning")
FIELDS = (*SCORES, "guess", "confidence")
SOURCES = ("real", "generated")
_LABELS = {  # accepted field labels → field
    "fluency": "fluency", "流畅": "fluency", "流畅度": "fluency",
    "coherence": "coherence", "连贯": "coherence", "连贯性": "coherence",
    "meaning": "meaning", "意义": "meaning", "意蕴": "meaning", "意思": "meaning",
    "guess": "guess", "判断": "guess", "猜测": "guess", "source": "guess",
    "confidence": "confidence", "把握": "confidence", "信心": "confidence",
}
_FIELD_LINE = re.compile(r"^\s*(?:[-*+]\s*)?(?:\*\*)?\s*(?P<label>[a-zA-Z]+|[\u4e00-\u9fff]+)[^:：\n]*?(?:\*\*)?\s*[:：]"
                         r"(?:\*\*)?\s*(?P<value>.*?)\s*$")
_HEADING = re.compile(r"^\s*(?:#{1,6}\s*|\*\*\s*)(?:poem|no\.?|number|#|第)?\s*(?P<no>\d+)\s*(?:首)?\s*(?:\*\*)?\s*[.:：]?\s*$",
                      re.IGNORECASE)
_SHEET_ID = re.compile(r"^\s*(?:[-*]\s*)?sheet(?:\s*id)?\s*[:：]\s*`?(?P<id>[A-Za-z0-9-]+)`?\s*$", re.IGNORECASE | re.MULTILINE)
_HUMAN = ("human", "h", "person", "people", "real", "人", "人类", "真人")
_MACHINE = ("machine", "m", "computer", "ai", "model", "generated", "机", "机器", "电脑", "计算机")


class SheetError(ValueError):
    """A filled sheet that cannot be scored; the message lists every problem found."""


# ---- building -----------------------------------------------------------------------------------
def display_body(text: str) -> str:
    """The poem as readers see it: punctuation reduced to ，。, one sentence (up to a 。) a line."""
    t = canonical_text(text)
    return "\n".join(s + "。" for s in t.rstrip("。").split("。") if s) if t else ""


def _balanced_take(poems: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n poems, dealt round-robin over forms after a seeded shuffle (so every form is represented)."""
    by: dict = defaultdict(list)
    for p in poems:
        by[p.get("form", "")].append(p)
    for v in by.values():
        rng.shuffle(v)
    out, forms = [], sorted(by)
    while len(out) < n and any(by.values()):
        for f in forms:
            if by[f] and len(out) < n:
                out.append(by[f].pop())
    return out


def match_real(generated: list[dict], pool: list[dict], rng: random.Random) -> list[dict]:
    """A real poem for each generated one, same form (and 词牌 when there is one left), never the
    poem of the generated one's own group (it shares a title, keywords or line heads with it)."""
    taken = {p.get("group") for p in generated if p.get("group")}
    cands = [r for r in pool if r.get("id", r.get("group")) not in taken]
    rng.shuffle(cands)
    used: set[int] = set()
    out = []
    for g in generated:
        pick = None
        for strict in (True, False):
            for i, r in enumerate(cands):
                if i in used or r.get("form") != g.get("form"):
                    continue
                if strict and g.get("form") == "词" and r.get("cipai") != g.get("cipai"):
                    continue
                pick = i
                break
            if pick is not None:
                break
        if pick is None:
            raise ValueError(f"no real poem of form {g.get('form')!r} left to match")
        used.add(pick)
        out.append(cands[pick])
    return out


def sheet_id(seed: int, texts: list[str]) -> str:
    return hashlib.sha1(json.dumps([seed, texts], ensure_ascii=False).encode()).hexdigest()[:8]


def build_sheet(generated: list[dict] | dict[str, list[dict]], real: list[dict], n: int, seed: int,
                real_is_pool: bool = True) -> tuple[str, dict]:
    """(sheet markdown, key). `n` poems of each source. `real_is_pool`: `real` is a pool to match
    forms from (e.g. the test split); otherwise its first `n` poems are used as they are.

    `generated` may be several arms (name → poems, e.g. two sampling settings for the same requests):
    `n` of each, on disjoint requests (a reader never meets two answers to one request), all mixed
    into one sheet with the real poems; the key records each poem's arm."""
    arms = generated if isinstance(generated, dict) else {"generated": generated}
    rng = random.Random(seed)
    gen: list[tuple[str, dict]] = []
    taken: set = set()
    for arm, poems in arms.items():
        free = [p for p in poems if not p.get("group") or p["group"] not in taken]
        got = _balanced_take(free, n, rng)
        if len(got) < n:
            raise ValueError(f"only {len(got)} generated poems{f' in arm {arm!r}' if len(arms) > 1 else ''} "
                             f"(on requests no other arm took); asked for {n}")
        taken |= {p.get("group") for p in got if p.get("group")}
        gen += [(arm, p) for p in got]
    first = [p for a, p in gen if a == next(iter(arms))]
    mixes = {arm: sorted(p.get("form", "") for a, p in gen if a == arm) for arm in arms}
    if len({tuple(m) for m in mixes.values()}) > 1:  # else an arm's scores would differ by form, not by arm
        raise ValueError("the arms do not have the same forms to offer: " + "; ".join(
            f"{arm}: " + ", ".join(f"{f} {m.count(f)}" for f in sorted(set(m))) for arm, m in mixes.items()))
    if real_is_pool:
        real = [r for r in real if r.get("id", r.get("group")) not in taken]
    re_ = match_real(first, real, rng) if real_is_pool else _balanced_take(real, n, rng)
    if len(re_) < n:
        raise ValueError(f"only {len(re_)} real poems; asked for {n}")
    items = [("generated", arm, p) for arm, p in gen] + [("real", "", p) for p in re_]
    rng.shuffle(items)
    bodies = [display_body(p["text"]) for _, _, p in items]
    sid = sheet_id(seed, bodies)
    key = {"sheet_id": sid, "seed": seed, "n_per_source": n, **({"arms": list(arms)} if len(arms) > 1 else {}),
           "items": [
        {"no": i + 1, "source": src, **({"arm": arm} if len(arms) > 1 and arm else {}), "form": p.get("form", ""),
         "cipai": p.get("cipai", ""), "ref": p.get("id") or p.get("group") or "", "title": p.get("title", ""),
         "body": body,
         **({"model_version": p["model_version"]} if "model_version" in p else {}),
         **({"request": p["request"]} if "request" in p else {})}
        for i, ((src, arm, p), body) in enumerate(zip(items, bodies, strict=True))]}
    return render_sheet(sid, bodies), key


SHEET_INSTRUCTIONS = """\
Below are {n} short classical Chinese poems (诗 and 词), numbered 1 to {n}, shown without titles or
authors. Some were written by people, some by a computer program; the mix is not stated. Read each
poem on its own and fill in every blank after it:

- **fluency** 1–5: does it read as natural classical Chinese? (1 = broken, 5 = effortless)
- **coherence** 1–5: do the lines belong together — one scene, thought or feeling that develops?
- **meaning** 1–5: does it say something — an image, an idea, a feeling worth reading?
- **guess**: `human` or `machine` — who do you think wrote it?
- **confidence** 1–5: how sure is that guess? (1 = a coin toss, 5 = certain)

Write the answers after the colons; keep the numbers and the field names. Do not look poems up.
"""


def render_sheet(sid: str, bodies: list[str]) -> str:
    parts = [f"# Poetry reading sheet\n\nsheet: {sid}\n\n" + SHEET_INSTRUCTIONS.format(n=len(bodies))]
    for i, body in enumerate(bodies, 1):
        parts.append(f"## {i}\n\n{body}\n\n" + "".join(f"- {f}: \n" for f in FIELDS))
    return "\n".join(parts)


# ---- parsing filled sheets ----------------------------------------------------------------------
def _number(value: str) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*5|分)?\b", value)
    return float(m.group(1)) if m else None


def _guess(value: str) -> str | None:
    v = value.strip().strip("`*_").strip().lower()
    v = re.split(r"[\s,，(（/]", v, maxsplit=1)[0] if v else v
    if v in _HUMAN:
        return "human"
    if v in _MACHINE:
        return "machine"
    return None


def _confidence(value: str) -> float | None:
    pct = re.match(r"^\s*(\d+(?:\.\d+)?)\s*%", value)
    if pct:  # 50% (a coin toss) … 100% (certain) onto 1 … 5
        p = float(pct.group(1))
        return 1 + 4 * (p - 50) / 50 if 50 <= p <= 100 else None
    return _number(value)


def parse_sheet(text: str, n_items: int, expected_id: str | None = None, name: str = "sheet") -> dict:
    """{"sheet_id", "answers": {no: {field: value}}} from a filled sheet; SheetError listing every
    problem (missing poems, repeated numbers, blank or out-of-range answers, a sheet of another key)."""
    text = unicodedata.normalize("NFKC", text)  # full-width digits and colons
    problems: list[str] = []
    m = _SHEET_ID.search(text)
    sid = m.group("id") if m else None
    if expected_id and sid and sid != expected_id:
        raise SheetError(f"{name}: this is sheet {sid}, but the key is for sheet {expected_id}")
    answers: dict[int, dict] = {}
    current: int | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        h = _HEADING.match(line)
        if h:
            current = int(h.group("no"))
            if not 1 <= current <= n_items:
                problems.append(f"line {lineno}: poem number {current} is not on this sheet (1–{n_items})")
                current = None
            elif current in answers:
                problems.append(f"line {lineno}: poem {current} appears twice")
                current = None
            else:
                answers[current] = {}
            continue
        f = _FIELD_LINE.match(line)
        if not f or current is None:
            continue
        field = _LABELS.get(f.group("label").lower())
        if field is None:
            continue
        if field in answers[current]:
            problems.append(f"line {lineno}: poem {current} has two '{field}' answers")
            continue
        raw = f.group("value").strip()
        if not raw:
            continue  # reported below as blank
        if field in SCORES:
            v = _number(raw)
            if v is None or not 1 <= v <= 5:
                problems.append(f"line {lineno}: poem {current} {field} must be a number 1–5, got {raw!r}")
                continue
        elif field == "guess":
            v = _guess(raw)
            if v is None:
                problems.append(f"line {lineno}: poem {current} guess must be 'human' or 'machine', got {raw!r}")
                continue
        else:
            v = _confidence(raw)
            if v is None or not 1 <= v <= 5:
                problems.append(f"line {lineno}: poem {current} confidence must be 1–5, got {raw!r}")
                continue
        answers[current][field] = v
    missing = [i for i in range(1, n_items + 1) if i not in answers]
    if missing:
        problems.append(f"poems missing: {_ranges(missing)}")
    for i in sorted(answers):
        blank = [f for f in FIELDS if f not in answers[i]]
        if blank and not any(p.startswith("line ") and f" poem {i} " in p for p in problems):
            problems.append(f"poem {i}: no answer for {', '.join(blank)}")
    if problems:
        shown = problems[:25] + ([f"… and {len(problems) - 25} more"] if len(problems) > 25 else [])
        raise SheetError(f"{name}: cannot score this sheet:\n  " + "\n  ".join(shown))
    return {"sheet_id": sid, "answers": answers}


def _ranges(xs: list[int]) -> str:
    out, i = [], 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}–{xs[j]}")
        i = j + 1
    return ", ".join(out)


# ---- scoring ------------------------------------------------------------------------------------
def machine_score(a: dict) -> float:
    """How strongly a reader says 'machine': +confidence for machine, −confidence for human."""
    return a["confidence"] if a["guess"] == "machine" else -a["confidence"]


def score_sheets(key: dict, sheets: dict[str, dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """`sheets`: reader name → `parse_sheet` result. Means per source and reader, guess accuracy and AUC."""
    src = {it["no"]: it["source"] for it in key["items"]}
    rows = [{"reader": r, "no": no, "source": src[no], **a} for r, s in sheets.items() for no, a in s["answers"].items()]
    out: dict = {"sheet_id": key["sheet_id"], "readers": list(sheets), "n_items": len(src),
                 "n_per_source": {s: sum(1 for v in src.values() if v == s) for s in SOURCES}, "scores": {},
                 "per_reader": {}}

    def mean(field):
        return lambda xs: statistics.fmean(x[field] for x in xs) if xs else float("nan")

    for s in SOURCES:
        sub = [x for x in rows if x["source"] == s]
        out["scores"][s] = {f: bootstrap_groups(mean(f), sub, [x["no"] for x in sub], n_boot, seed) for f in SCORES}

    def acc(xs):
        return sum((x["guess"] == "machine") == (x["source"] == "generated") for x in xs) / len(xs) if xs else float("nan")

    def auc(xs):
        return roc_auc([int(x["source"] == "generated") for x in xs], [machine_score(x) for x in xs])

    groups = [x["no"] for x in rows]
    out["guess"] = {"accuracy": bootstrap_groups(acc, rows, groups, n_boot, seed),
                    "auc": bootstrap_groups(auc, rows, groups, n_boot, seed),
                    "said_machine": sum(x["guess"] == "machine" for x in rows) / max(1, len(rows))}
    for r in sheets:
        sub = [x for x in rows if x["reader"] == r]
        g = [x["no"] for x in sub]
        out["per_reader"][r] = {
            **{f"{f} ({s})": statistics.fmean(x[f] for x in sub if x["source"] == s) for s in SOURCES for f in SCORES},
            "accuracy": bootstrap_groups(acc, sub, g, n_boot, seed),
            "auc": bootstrap_groups(auc, sub, g, n_boot, seed),
            "said_machine": sum(x["guess"] == "machine" for x in sub) / max(1, len(sub)),
        }
    arm_of = {it["no"]: it.get("arm", "") for it in key["items"]}
    if key.get("arms"):  # several generated arms: each against the real poems, on the same sheets
        out["arms"] = {}
        for arm in key["arms"]:
            sub = [x for x in rows if arm_of[x["no"]] == arm]
            both = sub + [x for x in rows if x["source"] == "real"]
            out["arms"][arm] = {
                "n": sum(1 for v in arm_of.values() if v == arm),
                "scores": {f: bootstrap_groups(mean(f), sub, [x["no"] for x in sub], n_boot, seed) for f in SCORES},
                "auc": bootstrap_groups(auc, both, [x["no"] for x in both], n_boot, seed),
                "said_machine": sum(x["guess"] == "machine" for x in sub) / max(1, len(sub)),
            }
        if len(key["arms"]) >= 2:  # each later arm minus the first (the baseline), poems resampled within arms
            base = key["arms"][0]
            out["arm_diffs"] = {arm: {f: arm_difference(rows, arm_of, arm, base, f, n_boot, seed) for f in SCORES}
                                for arm in key["arms"][1:]}
            out["arm_baseline"] = base
    if len(sheets) >= 2:  # do readers agree? mean pairwise correlation of their per-poem scores
        names = list(sheets)
        corr = {}
        for f in (*SCORES, "machine"):
            vals = []
            for i in range(len(names)):
                for j in range(i + 1, len(names)):
                    ai, aj = sheets[names[i]]["answers"], sheets[names[j]]["answers"]
                    nos = sorted(set(ai) & set(aj))
                    xi = [machine_score(ai[n]) if f == "machine" else ai[n][f] for n in nos]
                    xj = [machine_score(aj[n]) if f == "machine" else aj[n][f] for n in nos]
                    if len(set(xi)) > 1 and len(set(xj)) > 1:
                        vals.append(statistics.correlation(xi, xj))
            corr[f] = statistics.fmean(vals) if vals else float("nan")
        out["agreement"] = corr
    return out


def arm_difference(rows: list[dict], arm_of: dict[int, str], arm: str, base: str, field: str, n_boot: int = 2000,
                   seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean `field` of `arm` − that of `base`, low, high): per-poem means over readers, poems resampled
    within each arm (the arms' requests are disjoint, so the samples are independent)."""
    def per_poem(a: str) -> list[float]:
        by: dict[int, list[float]] = {}
        for x in rows:
            if arm_of[x["no"]] == a:
                by.setdefault(x["no"], []).append(x[field])
        return [statistics.fmean(v) for _, v in sorted(by.items())]

    xa, xb = per_poem(arm), per_poem(base)
    point = statistics.fmean(xa) - statistics.fmean(xb)
    rng = random.Random(seed)
    vals = sorted(statistics.fmean(rng.choices(xa, k=len(xa))) - statistics.fmean(rng.choices(xb, k=len(xb)))
                  for _ in range(n_boot))
    return point, vals[int(alpha / 2 * n_boot)], vals[min(n_boot - 1, int((1 - alpha / 2) * n_boot))]


def _ci(t: tuple[float, float, float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(t[0])} [{fmt.format(t[1])}, {fmt.format(t[2])}]"


def results_markdown(res: dict) -> str:
    n = res["n_per_source"]
    lines = [f"Sheet `{res['sheet_id']}`: {res['n_items']} poems ({n['real']} real, {n['generated']} generated), "
             f"{len(res['readers'])} reader(s); 95% bootstrap intervals over poems.", "",
             "| source | fluency | coherence | meaning |", "|---|---:|---:|---:|"]
    for s in SOURCES:
        lines.append(f"| {s} | " + " | ".join(_ci(res["scores"][s][f]) for f in SCORES) + " |")
    if res.get("arms"):
        lines += ["", "Each generated arm against the same real poems:", "",
                  "| arm | poems | fluency | coherence | meaning | guess ROC-AUC vs real | share said 'machine' |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for arm, m in res["arms"].items():
            lines.append(f"| {arm} | {m['n']} | " + " | ".join(_ci(m["scores"][f]) for f in SCORES)
                         + f" | {_ci(m['auc'], '{:.3f}')} | {m['said_machine']:.2f} |")
    if res.get("arm_diffs"):
        lines += ["", f"Each arm minus `{res['arm_baseline']}` (per-poem means; poems resampled within arms):", "",
                  "| arm | fluency | coherence | meaning |", "|---|---:|---:|---:|"]
        for arm, d in res["arm_diffs"].items():
            lines.append(f"| {arm} − {res['arm_baseline']} | "
                         + " | ".join(_ci(d[f], "{:+.2f}") for f in SCORES) + " |")
    g = res["guess"]
    lines += ["", "| guesses | accuracy | ROC-AUC (confidence-weighted) | share said 'machine' |", "|---|---:|---:|---:|",
              f"| all readers | {_ci(g['accuracy'], '{:.3f}')} | {_ci(g['auc'], '{:.3f}')} | {g['said_machine']:.2f} |"]
    for r, m in res["per_reader"].items():
        lines.append(f"| {r} | {_ci(m['accuracy'], '{:.3f}')} | {_ci(m['auc'], '{:.3f}')} | {m['said_machine']:.2f} |")
    lines += ["", "| reader | " + " | ".join(f"{f} ({s})" for s in SOURCES for f in SCORES) + " |",
              "|---|" + "---:|" * 6]
    for r, m in res["per_reader"].items():
        lines.append(f"| {r} | " + " | ".join(f"{m[f'{f} ({s})']:.2f}" for s in SOURCES for f in SCORES) + " |")
    if "agreement" in res:
        a = res["agreement"]
        lines += ["", "Agreement between readers (mean pairwise Pearson r of per-poem answers): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in a.items()) + "."]
    return "\n".join(lines) + "\n"


# ---- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from core.atomic import write_text

    ap = argparse.ArgumentParser(prog="python -m training.blind_test", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="a shuffled reading sheet and its answer key")
    b.add_argument("--generated", nargs="+", required=True, metavar="[ARM=]JSONL",
                   help="JSONL of generated poems ({text, form, cipai, group}); several as ARM=PATH, one arm each")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--real-from-test", action="store_true", help="real poems of the same forms from the test split")
    src.add_argument("--real", type=Path, help="JSONL of real poems to use instead")
    b.add_argument("--n", type=int, default=40, help="poems from each source")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", type=Path, default=Path("docs/blind"))
    s = sub.add_parser("score", help="score filled sheets against the key")
    s.add_argument("--key", type=Path, required=True)
    s.add_argument("--sheets", type=Path, nargs="+", required=True)
    s.add_argument("--out", type=Path, help="also write the results table (markdown) here")
    s.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            # ARM=PATH where ARM is a plain name; anything else (a path that holds "=") is one path
            specs = [g.split("=", 1) if re.match(r"^[\w.+-]+=", g) and not Path(g).exists() else ["generated", g]
                     for g in args.generated]
            if len({name for name, _ in specs}) < len(specs):
                raise ValueError("each --generated arm needs its own name (ARM=PATH)")
            gen = {name: load_poems(Path(path)) for name, path in specs}
            if len(gen) == 1:
                gen = next(iter(gen.values()))
            if args.real_from_test:
                from core import paths
                from training.corpus import load_split

                pool = load_split(paths.dataset_dir(), "test")
            else:
                pool = load_poems(args.real)
            sheet, key = build_sheet(gen, pool, args.n, args.seed, real_is_pool=args.real_from_test)
            sp, kp = args.out / f"sheet-{key['sheet_id']}.md", args.out / f"key-{key['sheet_id']}.json"
            write_text(sp, sheet)
            write_text(kp, json.dumps(key, ensure_ascii=False, indent=1) + "\n")
            print(f"sheet: {sp}\nkey:   {kp}  (keep it away from the readers)")
        else:
            key = json.loads(args.key.read_text("utf-8"))
            n = len(key["items"])
            sheets = {p.stem: parse_sheet(p.read_text("utf-8"), n, key["sheet_id"], str(p)) for p in args.sheets}
            res = score_sheets(key, sheets)
            md = results_markdown(res)
            if args.out:
                write_text(args.out, md)
            print(json.dumps(res, ensure_ascii=False, indent=1) if args.json else md)
    except (SheetError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
