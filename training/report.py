"""Human-readable tables for the dataset summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

FORM_ORDER = ("五绝", "七绝", "五律", "七律", "排律", "古体", "词")


def print_summary(manifest: dict, where: Path) -> None:
    con = Console()
    t = Table(title=f"Shiren corpus — {manifest.get('package', '?')}")
    t.add_column("form")
    for s in ("train", "valid", "test"):
        t.add_column(s, justify="right")
    t.add_column("total", justify="right")
    per_form = manifest["per_form"]
    for form in sorted(per_form, key=lambda f: FORM_ORDER.index(f) if f in FORM_ORDER else 99):
        row = per_form[form]
        t.add_row(form, *(f"{row.get(s, 0):,}" for s in ("train", "valid", "test")), f"{sum(row.values()):,}")
    p = manifest["poems"]
    t.add_row("[b]poems[/]", *(f"{p.get(s, 0):,}" for s in ("train", "valid", "test")), f"{sum(p.values()):,}")
    c = manifest["chars"]
    t.add_row("[b]chars[/]", *(f"{c.get(s, 0):,}" for s in ("train", "valid", "test")), f"{sum(c.values()):,}")
    con.print(t)
    con.print(
        f"distinct chars: {manifest['distinct_chars']:,}   vocab: {manifest.get('vocab_size', '?'):,} "
        f"(min freq {manifest.get('vocab_min_freq')}, valid unk rate {manifest.get('valid_unk_rate', 0):.4%})   "
        f"词牌: {manifest.get('distinct_cipai', 0):,}"
    )
    con.print(f"dropped: {manifest.get('dropped')}   built in {manifest.get('seconds')} s → {where}")
