"""Readers' scores and the detectors' AUC against the sampling temperature, in one figure.

Each blind sheet whose arms are named `t<temperature>` (training.blind_test build --generated t0.6=...)
gives one line per scale, with 95% intervals over poems; sheets read by different readers are drawn
apart (readers differ in how high they score, so compare arms within a sheet first). The sweep files
(training.decode_sweep --out X: X.json) add the n-gram classifier's AUC on a second axis.

    python -m training.temperature_plot --sheets 908b1c43 b7e12946 d57d82f6 \
        --sweeps runs/sweep-a.json runs/sweep-b.json --out docs/temperature-readings.png
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from training.blind_test import parse_sheet, score_sheets

SCALES = ("fluency", "coherence", "meaning")
ARM = re.compile(r"^t(\d+(?:\.\d+)?)$")


def sheet_points(blind_dir: Path, sheet_id: str) -> dict[str, list[tuple[float, float, float, float]]]:
    """scale → [(temperature, mean, low, high)] for the sheet's temperature arms, plus 'real' → [(nan, ...)]."""
    key = json.loads((blind_dir / f"key-{sheet_id}.json").read_text("utf-8"))
    filled = sorted(blind_dir.glob(f"filled-{sheet_id}-*.md"))
    if not filled:
        raise SystemExit(f"no filled sheets for {sheet_id} in {blind_dir}")
    n = len(key["items"])
    res = score_sheets(key, {p.stem: parse_sheet(p.read_text("utf-8"), n, sheet_id, str(p)) for p in filled})
    out: dict[str, list[tuple[float, float, float, float]]] = {s: [] for s in SCALES}
    for arm, r in res["arms"].items():
        m = ARM.match(arm)
        if m is None:
            continue
        for s in SCALES:
            out[s].append((float(m.group(1)), *r["scores"][s]))
    for s in SCALES:
        out[s].sort()
        out.setdefault("real", []).append((float("nan"), *res["scores"]["real"][s]))
    return out


def sweep_points(paths: list[Path]) -> list[tuple[float, float, float, float]]:
    """[(temperature, n-gram AUC, low, high)] from decode_sweep's row files (top-p 0.95 only)."""
    pts = {}
    for p in paths:
        for r in json.loads(p.read_text("utf-8")):
            if abs(r["top_p"] - 0.95) < 1e-9:
                pts[r["temperature"]] = (r["temperature"], r["auc"], *r["auc_ci"])
    return sorted(pts.values())


def plot(sheets: dict[str, dict], auc: list[tuple[float, float, float, float]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SCALES), figsize=(13, 4.2), sharey=True)
    markers = "osD^v"
    for ax, scale in zip(axes, SCALES, strict=True):
        for k, (sid, pts) in enumerate(sheets.items()):
            xs = [p[0] for p in pts[scale]]
            if not xs:
                continue
            ys = [p[1] for p in pts[scale]]
            err = [[p[1] - p[2] for p in pts[scale]], [p[3] - p[1] for p in pts[scale]]]
            line = ax.errorbar(xs, ys, yerr=err, marker=markers[k % len(markers)], capsize=3, label=f"sheet {sid}")
            real = pts["real"][SCALES.index(scale)][1]
            ax.axhline(real, ls=":", lw=1, color=line[0].get_color())
        ax.set_title(scale)
        ax.set_xlabel("sampling temperature (top-p 0.95)")
        ax.grid(alpha=0.3)
        if auc:
            tw = ax.twinx()
            tw.plot([a[0] for a in auc], [a[1] for a in auc], color="grey", ls="--", marker=".", label="n-gram AUC")
            tw.set_ylim(0.5, 1.0)
            if scale == SCALES[-1]:
                tw.set_ylabel("two-sample n-gram AUC (dashed; 0.5 = indistinguishable)")
            else:
                tw.set_yticklabels([])
    axes[0].set_ylabel("readers' mean score (1–5); dotted: the sheet's real poems")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("Blind readings of the shipped poet by sampling temperature")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.temperature_plot", description=__doc__.split("\n")[0])
    ap.add_argument("--sheets", nargs="+", required=True, help="sheet ids with t<temperature> arms")
    ap.add_argument("--blind-dir", type=Path, default=Path("docs/blind"))
    ap.add_argument("--sweeps", nargs="*", type=Path, default=[], help="decode_sweep row files (.json)")
    ap.add_argument("--out", type=Path, default=Path("docs/temperature-readings.png"))
    a = ap.parse_args(argv)
    sheets = {sid: sheet_points(a.blind_dir, sid) for sid in a.sheets}
    plot(sheets, sweep_points(a.sweeps), a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
