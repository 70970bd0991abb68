"""Which sampling settings make the poems hardest to tell from real ones.

A grid of temperature × top-p, each scored by the two-sample test (`training.two_sample`) against the
same real poems of the test split, for the same requests and seeds: the n-gram classifier's ROC-AUC
(0.5 = indistinguishable), and the likelihood gap under an independent character trigram LM of the
train split. Low temperatures give the blandest, most predictable poems (a gap above 0 that alone
gives them away); high ones give broken phrases the classifier sees. The setting to ship is the one
with the lowest AUC whose form guarantees hold — the blind reading then checks it with readers.

    python -m training.decode_sweep --temperatures 0.7,0.8,0.9,1.0 --top-p 0.9,0.95 --per-form 20 \
        [--model-dir DIR --adapter DIR] [--out docs/decode-sweep.md]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.contrast import Contrast
from core.poet import PLAIN_DRAFTS, RESAMPLE_DRAFTS
from core.smc import Resample
from training.two_sample import NgramLM, generate_pairs, two_sample_requests, two_sample_test

LM_NAME = "char trigram LM (train split)"


@dataclass(frozen=True)
class Setting:
    temperature: float
    top_p: float
    beta: float | None = None  # contrastive decoding's β (core.contrast); None: plain sampling


def grid(temperatures: list[float], top_ps: list[float], betas: list[float | None] | None = None) -> list[Setting]:
    return [Setting(t, p, b) for b in (betas or [None]) for t in temperatures for p in top_ps]


def score_setting(poet: Any, pairs: list[tuple[Any, dict]], setting: Setting, lm: NgramLM | None, seed: int = 0,
                  progress: bool = True) -> dict:
    """One row: the setting, how many requests it served, the n-gram AUC (95% CI) and the LM gap.
    A setting with a β needs a poet loaded with an amateur (core.contrast)."""
    if setting.beta is not None or getattr(poet, "contrast", None) is not None:
        poet.set_contrast(None if setting.beta is None else replace(poet.contrast or Contrast(), beta=setting.beta))
    reqs = [(replace(req, temperature=setting.temperature, top_p=setting.top_p), row) for req, row in pairs]
    real, gen = generate_pairs(poet, reqs, progress=progress)
    ts = two_sample_test(real, gen, groups_a=[p["group"] for p in real], groups_b=[p["group"] for p in gen],
                         classifiers=("ngram",), seed=seed, lm=lm, names=("real", "generated"))
    ng = ts["classifiers"]["ngram"]
    row = {"temperature": setting.temperature, "top_p": setting.top_p, "beta": setting.beta, "served": len(gen), "requests": len(pairs),
           "auc": ng["auc"], "auc_ci": ng["auc_ci"], "accuracy": ng["accuracy"],
           "generated": gen}  # to read them: numbers alone do not say which reads better
    if lm is not None:
        gap = ts["likelihood"][LM_NAME]
        row.update(lm_gap=gap["gap"], lm_gap_ci=gap["gap_ci"], lm_auc=gap["auc"])
    return row


def run_sweep(poet: Any, test_rows: list[dict], settings: list[Setting], per_form: int = 20, seed: int = 0,
              lm: NgramLM | None = None, progress: bool = True) -> list[dict]:
    """Every setting on the same requests (and request seeds), so rows differ only by the setting."""
    pairs = two_sample_requests(test_rows, per_form, seed)
    return [score_setting(poet, pairs, s, lm, seed, progress) for s in settings]


def detectability(row: dict) -> float:
    """How well the better of two detectors tells the poems from real ones, as an AUC in [0.5, 1]: the
    n-gram classifier, and the LM likelihood alone read either way (too predictable or too random:
    an AUC of 0.1 detects as well as one of 0.9). On the shipped model the n-gram AUC kept falling as
    the temperature rose past 1, while the likelihood alone gave the poems away ever more surely."""
    d = max(row["auc"], 1 - row["auc"])
    if "lm_auc" in row:
        d = max(d, row["lm_auc"], 1 - row["lm_auc"])
    return d


def poems_file(row: dict) -> str:
    beta = f"-cd{row['beta']:g}" if row.get("beta") is not None else ""
    return f"generated-T{row['temperature']:g}-p{row['top_p']:g}{beta}.jsonl"


def best(rows: list[dict]) -> dict:
    """The setting hardest to tell from real poems: the lowest detectability (ties: smaller LM gap)."""
    return min(rows, key=lambda r: (round(detectability(r), 3), abs(r.get("lm_gap", 0.0))))


def to_markdown(rows: list[dict], version: str = "") -> str:
    lm = any("lm_gap" in r for r in rows)
    cd = any(r.get("beta") is not None for r in rows)
    head = ("| contrast β " if cd else "") + ("| temperature | top-p | served | n-gram AUC [95% CI] |" + (" LM gap (gen − real) | AUC of LM alone |" if lm else "")
            + " detectability |")
    sep = ("|---:" if cd else "") + "|---:|---:|---:|---:|" + ("---:|---:|" if lm else "") + "---:|"
    win = best(rows) if rows else None
    lines = [f"Sampling settings, each on the same {rows[0]['requests'] if rows else 0} requests"
             + (f" ({version})" if version else "") + "; lower = harder to tell from real poems; detectability: the better detector's AUC, read either way.", "", head, sep]
    for r in rows:
        mark = " **←**" if r is win else ""
        cell = ((f"| {r['beta']:g} " if r.get("beta") is not None else "| – ") if cd else "") + (f"| {r['temperature']:g} | {r['top_p']:g} | {r['served']} | {r['auc']:.3f} "
                f"[{r['auc_ci'][0]:.3f}, {r['auc_ci'][1]:.3f}] |")
        if lm:
            cell += (f" {r['lm_gap']:+.3f} [{r['lm_gap_ci'][0]:+.3f}, {r['lm_gap_ci'][1]:+.3f}] | "
                     f"{r['lm_auc']:.3f} |")
        lines.append(cell + f" {detectability(r):.3f}{mark} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m training.decode_sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--temperatures", default="0.7,0.8,0.9,1.0")
    ap.add_argument("--top-p", default="0.95")
    ap.add_argument("--per-form", type=int, default=20, help="requests per form (5 forms)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--adapter", type=Path, default=None, help="default: the active adapter")
    ap.add_argument("--no-lm", action="store_true", help="skip the trigram LM's likelihood gap")
    ap.add_argument("--likelihood-weight", type=float, default=1.0,
                    help="how much likelihood counts in the poet's ranking of its drafts (0: the first clean draft)")
    ap.add_argument("--drafts", type=int, default=PLAIN_DRAFTS, help="drafts per poem")
    ap.add_argument("--amateur", type=Path, default=None,
                    help="a small model on the same tokenizer: sweep contrastive decoding against it too")
    ap.add_argument("--contrast", default="",
                    help="comma-separated contrastive β values (with --amateur); 'off' for plain sampling")
    ap.add_argument("--alpha", type=float, default=Contrast.alpha, help="contrastive plausibility cut α")
    ap.add_argument("--resample", type=float, default=None, metavar="ESS",
                    help="resample the drafts at clause ends when their effective sample size falls below ESS × "
                         f"drafts (core.smc; at least {RESAMPLE_DRAFTS} drafts)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table (Markdown) and the rows (.json)")
    ap.add_argument("--poems-dir", type=Path, default=None,
                    help="also write each setting's poems as JSONL (generated-T<t>-p<p>.jsonl: blind_test build input)")
    args = ap.parse_args(argv)

    from core import paths
    from core.atomic import write_text
    from core.poet import Poet
    from training.corpus import load_split
    from training.two_sample import train_lm

    try:
        betas = [None if b.strip() == "off" else float(b) for b in args.contrast.split(",")] if args.contrast else None
        settings = grid([float(t) for t in args.temperatures.split(",")], [float(p) for p in args.top_p.split(",")],
                        betas)
    except ValueError:
        ap.error("--temperatures, --top-p and --contrast take comma-separated numbers")
    if args.resample is not None and not 0.0 <= args.resample <= 1.0:
        ap.error("--resample takes a share of the drafts between 0 and 1")
    if betas and any(b is not None for b in betas) and args.amateur is None:
        ap.error("--contrast needs --amateur")
    poet = Poet.load(args.model_dir, args.adapter if args.adapter is not None else "auto", critic=None,
                     likelihood_weight=args.likelihood_weight, min_drafts=args.drafts, amateur=args.amateur,
                     contrast=Contrast(alpha=args.alpha) if args.amateur is not None else None,
                     resample=Resample(args.resample) if args.resample is not None else None)
    try:
        rows = run_sweep(poet, load_split(paths.dataset_dir(), "test"), settings, args.per_form, args.seed,
                         None if args.no_lm else train_lm(paths.dataset_dir()))
    finally:
        poet.close()
    md = to_markdown(rows, poet.version)
    print(md)
    if args.poems_dir:
        from training.two_sample import write_jsonl

        for r in rows:
            write_jsonl(args.poems_dir / poems_file(r), r["generated"])
    if args.out:
        write_text(args.out, md)
        write_text(args.out.with_suffix(".json"), json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
