"""An equal-budget scaling sweep: several model sizes, the same data and token count each, then a
Chinchilla-style fit that picks the size and token count for the compute we can spend.

    python -m training.sweep run --tokens 3e6 --sizes 256x4,384x6,512x8   # the runs (SHIREN_HOME/runs/sweep-*)
    python -m training.sweep report /work/data/runs/sweep-*               # table + plot + fit from their logs
    shiren train sweep /work/data/runs/sweep-*                            # the same report

The fit is L(N, D) = E + A/N^α + B/D'^β with Chinchilla's exponents (α = 0.34, β = 0.28; Hoffmann et
al. 2022) held fixed: with a handful of short runs the exponents are not identifiable, but E, A, B are
then a linear least-squares problem. D' discounts repeated epochs (Muennighoff et al. 2023: the R-th
repeat is worth exp(-R/R*) of fresh data, R* = 15.4), since the corpus is ~23M tokens and a long run
repeats it. The recommendation uses each size's *measured* tokens/s here (small models waste more of
the CPU), so "compute" is wall-clock hours on this machine, not an idealised FLOP count.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

# Chinchilla's fitted exponents (Hoffmann et al. 2022, approach 3), held fixed (see module docstring).
ALPHA, BETA = 0.34, 0.28
# Muennighoff et al. 2023: decay constant of the value of repeated epochs.
REPEAT_R_STAR = 15.4
# The plan: ~15 h of this 2-core CPU (the brief: 10–20 h over several sessions).
DEFAULT_HOURS = 15.0
DEFAULT_BUDGET_FLOPS = 3e15  # the floor: 6× the shipped model's compute
# The shipped model (models/base/README.md): a point at another token count for the B/D^β term.
SHIPPED = {"name": "shipped 256x4", "params": 5_172_224, "tokens": 16_302_080, "valid_loss": 4.277,
           "tok_s": 3693, "n_embd": 256, "n_layer": 4}


@dataclass
class SweepPoint:
    name: str
    params: int
    n_layer: int
    n_embd: int
    tokens: int
    valid_loss: float
    tok_s: float  # median over the run's logged steps
    seconds: float
    lr: float
    epoch_tokens: int  # tokens in one pass over the train split


def read_run(run: Path) -> SweepPoint:
    """One sweep run's result from its metrics.jsonl (the start line has the config)."""
    lines = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text("utf-8").splitlines() if x.strip()]
    start = next(r for r in lines if r.get("event") == "start")
    steps = [r for r in lines if "step" in r]
    valid = [r for r in steps if "valid_loss" in r]
    if not steps or not valid:
        raise ValueError(f"{run}: no steps or no valid loss logged yet")
    cfg = start["config"]
    rates = [r["tok_s"] for r in steps[len(steps) // 5 :] if r["tok_s"] > 0]  # past warm-up/compile
    first_time = steps[0]["time"]  # after the first step, which pays for compilation
    return SweepPoint(name=Path(run).name, params=start["params"], n_layer=cfg["model"]["n_layer"],
                      n_embd=cfg["model"]["n_embd"], tokens=steps[-1]["tokens"], valid_loss=valid[-1]["valid_loss"],
                      tok_s=statistics.median(rates) if rates else 0.0, seconds=steps[-1]["time"] - first_time,
                      lr=cfg["lr"], epoch_tokens=start.get("epoch_tokens", 0))


def effective_tokens(tokens: float, epoch_tokens: float) -> float:
    """Tokens worth of fresh data: the first epoch counts fully, repeats decay (Muennighoff et al.)."""
    if epoch_tokens <= 0 or tokens <= epoch_tokens:
        return tokens
    repeats = tokens / epoch_tokens - 1
    return epoch_tokens * (1 + REPEAT_R_STAR * (1 - math.exp(-repeats / REPEAT_R_STAR)))


@dataclass
class Fit:
    E: float
    A: float
    B: float
    rmse: float

    def loss(self, n: float, d_eff: float) -> float:
        return self.E + self.A / n**ALPHA + self.B / d_eff**BETA


def fit(points: list[tuple[float, float, float]]) -> Fit:
    """Least squares for E, A, B ≥ 0 on (N, D_eff, L) points, exponents fixed."""
    import numpy as np

    X = np.array([[1.0, n**-ALPHA, d**-BETA] for n, d, _ in points])
    y = np.array([loss for _, _, loss in points])
    active = [0, 1, 2]
    while True:  # drop a term that comes out negative (tiny non-negative least squares)
        coef, *_ = np.linalg.lstsq(X[:, active], y, rcond=None)
        if (coef >= 0).all() or len(active) == 1:
            break
        active.pop(int(np.argmin(coef)))
    full = np.zeros(3)
    full[active] = np.clip(coef, 0, None)
    rmse = float(np.sqrt(np.mean((X @ full - y) ** 2)))
    return Fit(float(full[0]), float(full[1]), float(full[2]), rmse)


def tok_s_at(params: float, pts: list[SweepPoint]) -> float:
    """Measured tokens/s, interpolated log-log in params (extrapolated from the two nearest ends)."""
    pts = sorted(pts, key=lambda p: p.params)
    if len(pts) == 1:  # one point: tokens/s inversely proportional to size
        return pts[0].tok_s * pts[0].params / params
    xs = [math.log(p.params) for p in pts]
    ys = [math.log(p.tok_s) for p in pts]
    x = math.log(params)
    i = 1 if x <= xs[0] else len(xs) - 1 if x >= xs[-1] else next(k for k in range(1, len(xs)) if xs[k] >= x)
    t = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    return math.exp(ys[i - 1] + t * (ys[i] - ys[i - 1]))


def params_of(n_layer: int, n_embd: int, vocab: int = 7651) -> int:
    """Parameters of the Llama config that training.model builds (tied embeddings, SwiGLU 8/3·d)."""
    inter = int(8 * n_embd / 3 + 63) // 64 * 64
    per_layer = 4 * n_embd * n_embd + 3 * n_embd * inter + 2 * n_embd
    return vocab * n_embd + n_layer * per_layer + n_embd


# Candidate shapes for the long run (head dim 64, depth grown with width as in the sweep).
CANDIDATES = [(4, 256), (6, 320), (6, 384), (8, 448), (8, 512), (10, 576), (10, 640), (12, 768)]


def recommend(f: Fit, pts: list[SweepPoint], hours: float, epoch_tokens: float, rate_scale: float = 1.0) -> list[dict]:
    """Predicted final valid loss of each candidate shape trained for `hours` here, at the sweep's
    measured tokens/s times `rate_scale` (the sweep ran on a shared machine; a quiet one is faster)."""
    rows = []
    for n_layer, n_embd in CANDIDATES:
        n = params_of(n_layer, n_embd)
        rate = tok_s_at(n, pts) * rate_scale
        tokens = rate * hours * 3600
        d_eff = effective_tokens(tokens, epoch_tokens)
        rows.append({"n_layer": n_layer, "n_embd": n_embd, "params": n, "tok_s": rate, "tokens": tokens,
                     "epochs": tokens / epoch_tokens if epoch_tokens else 0.0, "flops": 6 * n * tokens,
                     "pred_loss": f.loss(n, d_eff)})
    return rows


def report(runs: list[Path], png: Path, md: Path, budget_flops: float = DEFAULT_BUDGET_FLOPS,
           hours: float = DEFAULT_HOURS, include_shipped: bool = True, rate_scale: float = 1.0) -> str:
    """Write the sweep's Markdown table + fit (md) and plot (png); return the Markdown."""
    pts = sorted((read_run(r) for r in runs), key=lambda p: p.params)
    epoch_tokens = max((p.epoch_tokens for p in pts), default=0)
    data = [(p.params, effective_tokens(p.tokens, epoch_tokens), p.valid_loss) for p in pts]
    if include_shipped:
        data.append((SHIPPED["params"], effective_tokens(SHIPPED["tokens"], epoch_tokens), SHIPPED["valid_loss"]))
    f = fit(data)
    rec = recommend(f, pts, hours, epoch_tokens, rate_scale)
    ok = [r for r in rec if r["flops"] >= budget_flops] or rec
    best = min(ok, key=lambda r: r["pred_loss"])
    lines = ["| run | params | layers × d | lr | tokens | wall | tokens/s | valid loss |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in pts:
        lines.append(f"| {p.name} | {p.params / 1e6:.1f}M | {p.n_layer} × {p.n_embd} | {p.lr:g} | "
                     f"{p.tokens / 1e6:.2f}M | {p.seconds / 60:.1f} min | {p.tok_s:,.0f} | {p.valid_loss:.3f} |")
    lines += ["", f"Fit (α = {ALPHA}, β = {BETA} fixed; {len(data)} points incl. the shipped model's"
              f" {SHIPPED['valid_loss']} at {SHIPPED['tokens'] / 1e6:.1f}M tokens): "
              f"L = {f.E:.3f} + {f.A:.1f}/N^{ALPHA} + {f.B:.1f}/D'^{BETA}, rmse {f.rmse:.3f}.", "",
              f"Predicted final valid loss after {hours:g} h here (one epoch = {epoch_tokens / 1e6:.1f}M tokens; "
              f"tokens/s interpolated from the sweep, × {rate_scale:g}):", "",
              "| layers × d | params | tokens/s | tokens | epochs | FLOPs | predicted valid loss |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rec:
        mark = " **←**" if r is best else ""
        lines.append(f"| {r['n_layer']} × {r['n_embd']} | {r['params'] / 1e6:.1f}M | {r['tok_s']:,.0f} | "
                     f"{r['tokens'] / 1e6:.0f}M | {r['epochs']:.1f} | {r['flops']:.1e} | {r['pred_loss']:.3f}{mark} |")
    text = "\n".join(lines) + "\n"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text, "utf-8")
    plot(runs, pts, f, rec, epoch_tokens, png)
    return text


def plot(runs: list[Path], pts: list[SweepPoint], f: Fit, rec: list[dict], epoch_tokens: float, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    for run, p in zip(sorted(runs, key=lambda r: read_run(r).params), pts, strict=True):
        rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text("utf-8").splitlines() if x.strip()]
        va = [(r["tokens"] / 1e6, r["valid_loss"]) for r in rows if "valid_loss" in r]
        a.plot(*zip(*va, strict=True), "o-", ms=3, label=f"{p.params / 1e6:.1f}M ({p.n_layer}×{p.n_embd})")
    a.set_xlabel("tokens (M)")
    a.set_ylabel("valid loss (nats/char)")
    a.set_title("Equal-budget sweep: valid loss during training")
    a.grid(alpha=0.3)
    a.legend()
    ns = [p.params for p in pts]
    b.plot([n / 1e6 for n in ns], [p.valid_loss for p in pts], "o", label="sweep (measured)")
    b.plot([n / 1e6 for n in ns], [f.loss(p.params, effective_tokens(p.tokens, epoch_tokens)) for p in pts],
           "x", label="fit at sweep tokens")
    b.plot([r["params"] / 1e6 for r in rec], [r["pred_loss"] for r in rec], "s--",
           label=f"predicted after {DEFAULT_HOURS:g} h here")
    b.axhline(3.9, color="grey", ls=":", label="target 3.9")
    b.set_xscale("log")
    b.set_xlabel("parameters (M)")
    b.set_ylabel("valid loss (nats/char)")
    b.set_title("Fit L = E + A/N^α + B/D'^β")
    b.grid(alpha=0.3)
    b.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)


def run_sweep(sizes: list[tuple[int, int, float]], tokens: float, out_root: Path, batch: int, block: int,
              warmup_frac: float, eval_points: int) -> list[Path]:
    """Train each (n_layer, n_embd, lr) for `tokens` tokens, same data and schedule shape."""
    from core import paths
    from training.data import token_stream
    from training.model import GPTConfig
    from training.pretrain import TrainConfig, train
    from training.tokenizer import load_tokenizer

    ds = paths.dataset_dir()
    tok = load_tokenizer(paths.tokenizer_dir())
    train_s, valid_s = token_stream(ds, "train", tok), token_stream(ds, "valid", tok)
    steps = max(1, round(tokens / (batch * block)))
    outs = []
    for n_layer, n_embd, lr in sizes:
        out = out_root / f"sweep-{n_layer}x{n_embd}"
        mc = GPTConfig(arch="llama", vocab_size=len(tok), block_size=block, n_layer=n_layer,
                       n_head=max(1, n_embd // 64), n_embd=n_embd)
        cfg = TrainConfig(out_dir=str(out), dataset_dir=str(ds), model=mc, batch_size=batch, lr=lr,
                          max_steps=steps, warmup_steps=max(1, int(steps * warmup_frac)),
                          eval_interval=max(1, steps // eval_points), ckpt_minutes=1e9, eval_blocks=256)
        train(cfg, tok, train_s, valid_s)
        outs.append(out)
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--tokens", type=float, required=True)
    r.add_argument("--sizes", default="4x256:2e-3,6x384:1.5e-3,8x512:1e-3", help="LAYERSxWIDTH:LR,…")
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--block", type=int, default=256)
    r.add_argument("--warmup-frac", type=float, default=0.1)
    r.add_argument("--eval-points", type=int, default=4)
    r.add_argument("--out-root", type=Path, default=None)
    p = sub.add_parser("report")
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--png", type=Path, default=Path("docs/scaling-sweep.png"))
    p.add_argument("--md", type=Path, default=Path("docs/scaling-sweep.md"))
    p.add_argument("--hours", type=float, default=DEFAULT_HOURS)
    p.add_argument("--no-shipped", action="store_true", help="Fit on the sweep's points only.")
    p.add_argument("--rate-scale", type=float, default=1.0, help="Tokens/s of the long run ÷ the sweep's.")
    a = ap.parse_args()
    if a.cmd == "run":
        from core import paths

        sizes = []
        for s in a.sizes.split(","):
            shape, lr = s.split(":")
            n_layer, n_embd = (int(v) for v in shape.split("x"))
            sizes.append((n_layer, n_embd, float(lr)))
        run_sweep(sizes, a.tokens, a.out_root or paths.data_home() / "runs", a.batch, a.block, a.warmup_frac,
                  a.eval_points)
        return
    print(report(a.runs, a.png, a.md, hours=a.hours, include_shipped=not a.no_shipped, rate_scale=a.rate_scale))


if __name__ == "__main__":
    main()
