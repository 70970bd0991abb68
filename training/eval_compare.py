"""Two `shiren eval --out` results side by side: the old-vs-new table of a release.

    python -m training.eval_compare --old eval-old.json --new eval-new.json [--out docs/eval-compare.md]

Rows: held-out loss (base and adapter, both formats), the guarantees and copying of `shiren eval`'s
table (overall), and the two-sample test (classifiers' ROC-AUC with 95% intervals, the likelihood gap
under the trigram LM of the train split, which is the same scorer for both). A row either result
lacks is left blank. Held-out losses of models with different tokenizers are per their own tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

GUARANTEES = (("format", "format"), ("rhyme", "rhyme"), ("tone (relaxed)", "tone_relaxed"),
              ("rhyme, common readings", "rhyme_common"), ("tone, common readings", "tone_common"),
              ("copied lines", "copied"), ("repeated characters", "repeat_rate"), ("distinct bigrams", "distinct2"))
HELDOUT = (("valid, pretraining format", "valid (pretraining format)"),
           ("valid, instruction format", "valid (instruction format)"))
LM = "char trigram LM (train split)"


def _ci(v: dict, key: str, fmt: str = "{:.3f}") -> str:
    ci = v.get(f"{key}_ci")
    return fmt.format(v[key]) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


def rows(res: dict) -> dict[str, str]:
    """measure → formatted value of one eval result."""
    out: dict[str, str] = {}
    for label, key in HELDOUT:
        for model, m in res.get("heldout", {}).get(key, {}).items():
            out[f"held-out loss, {label}, {model} (nats/token)"] = f"{m['nats_per_token']:.3f}"
    overall = res.get("systems", {}).get("shiren", {}).get("overall", {})
    for label, key in GUARANTEES:
        if overall.get(key) is not None:
            out[label] = f"{overall[key]:.3f}"
    ts = res.get("two_sample")
    if ts:
        for name, c in ts.get("classifiers", {}).items():
            out[f"two-sample ROC-AUC, {name}"] = _ci(c, "auc")
            out[f"two-sample accuracy, {name}"] = _ci(c, "accuracy")
        if LM in ts.get("likelihood", {}):
            g = ts["likelihood"][LM]
            out["LM gap, generated − real (nats/char)"] = _ci(g, "gap", "{:+.3f}")
            out["AUC of the LM likelihood alone"] = _ci(g, "auc")
    return out


def to_markdown(old: dict, new: dict) -> str:
    a, b = rows(old), rows(new)
    keys = list(dict.fromkeys([*a, *b]))
    lines = [f"| measure | old: {old.get('model_version', '?')} | new: {new.get('model_version', '?')} |",
             "|---|---:|---:|"]
    lines += [f"| {k} | {a.get(k, '')} | {b.get(k, '')} |" for k in keys]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from core.atomic import write_text

    ap = argparse.ArgumentParser(prog="python -m training.eval_compare", description=__doc__.split("\n")[0])
    ap.add_argument("--old", type=Path, required=True)
    ap.add_argument("--new", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        old, new = (json.loads(p.read_text("utf-8")) for p in (args.old, args.new))
    except (OSError, ValueError) as e:
        print(f"error: cannot read an eval result: {e}", file=sys.stderr)
        return 2
    md = to_markdown(old, new)
    print(md)
    if args.out:
        write_text(args.out, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
