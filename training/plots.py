"""Loss curves as PNG (matplotlib, headless)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    rows = []
    for line in Path(path).read_text("utf-8").splitlines():
        with_step = json.loads(line)
        if "step" in with_step:
            rows.append(with_step)
    return rows


def plot_losses(metrics: Path, png: Path, title: str = "Shiren base GPT") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics)
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    tr = [(r["tokens"] / 1e6, r["train_loss"]) for r in rows]
    # Smooth the noisy per-step train loss with a running mean over ~1% of the run.
    k = max(1, len(tr) // 100)
    sm = [(tr[i][0], sum(v for _, v in tr[max(0, i - k + 1) : i + 1]) / min(k, i + 1)) for i in range(len(tr))]
    ax.plot(*zip(*sm, strict=True), label="train (smoothed)", lw=1)
    va = [(r["tokens"] / 1e6, r["valid_loss"]) for r in rows if "valid_loss" in r]
    if va:
        ax.plot(*zip(*va, strict=True), "o-", label="valid", ms=3)
    ax.set_xlabel("tokens seen (M)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = Path(png).with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)
