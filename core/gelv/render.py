"""Terminal (rich) annotation and JSON output of an Analysis."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.gelv.checker import Analysis, CharNote

TONE_STYLE = {"平": "green", "仄": "dark_orange", "◎": "cyan", "？": "dim"}
LEGEND = "平 green · 仄 orange · ◎ 多音字(平仄两读) · ？ 韵表未收 · 红底 = 违律 · [韵] 韵脚"


def to_json(an: Analysis, indent: int | None = 2) -> str:
    return json.dumps(an.to_dict(), ensure_ascii=False, indent=indent)


def _pad(s: str) -> str:
    from rich.cells import cell_len

    return s + " " * max(0, 2 - cell_len(s))


def _char_style(cn: CharNote) -> str:
    base = TONE_STYLE.get(cn.tone_mark, "")
    if cn.violations:
        return "bold white on red3" if any(not v.endswith("(严)") for v in cn.violations) else f"{base} underline"
    if cn.is_rhyme_pos:
        return f"bold {base}"
    return base


def render(an: Analysis) -> Any:
    """A rich renderable: the poem annotated per character, findings and verdict."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = []
    title = f"{an.form}" + (f"《{an.cipai}》" if an.cipai else "") + (f" · {an.template}" if an.template else "")
    parts.append(Text(title, style="bold"))
    for i, la in enumerate(an.lines):
        row1 = Text(f"{i + 1:>2}  ", style="dim")
        row2 = Text("    ")
        for cn in la.chars:
            row1.append(_pad(cn.char), style=_char_style(cn))
            row2.append(_pad(cn.tone_mark), style=TONE_STYLE.get(cn.tone_mark, ""))
        row1.append(la.punct or " ", style="dim")
        last = la.chars[-1] if la.chars else None
        if last is not None and last.is_rhyme_pos:
            row1.append(f"  [韵 {last.rhyme_group or '?'}]", style="magenta")
        if la.pattern:
            row2.append("  " + la.pattern, style="dim")
        parts.append(row1)
        parts.append(row2)
        if la.violations:
            parts.append(Text("    ↳ " + "；".join(la.violations), style="red"))
    other = [f for f in an.findings if not f.startswith("第") or "句：" not in f]
    for f in other:
        parts.append(Text("• " + f, style="yellow"))
    ok = an.verdict.startswith(("合律", "合谱"))
    parts.append(Text(an.verdict, style="bold green" if ok else "bold red"))
    if an.is_jinti:
        s = an.scores()
        parts.append(Text(
            f"押韵 {'✓' if an.rhyme_ok else '✗'}  粘对 {'✓' if an.nian_dui_ok else '✗'}  "
            f"平仄(宽) {an.relaxed_lines_ok}/{len(an.lines)}句  平仄(严) {'✓' if an.tone_strict_ok else '✗'}  "
            f"孤平 {s['gu_ping']}  三平尾 {s['san_ping_wei']}", style="dim"))
    parts.append(Text(LEGEND, style="dim"))
    return Group(*parts)


def render_plain(an: Analysis) -> str:
    """Plain-text rendering (no colours), e.g. for logs and the bot."""
    import io

    from rich.console import Console

    console = Console(width=100, color_system=None, record=True, file=io.StringIO())
    console.print(render(an))
    return console.export_text()
