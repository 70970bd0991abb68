"""格律 analysis of a poem: each character coloured by 平/仄, the rhyme group at each 韵脚, violations listed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

if TYPE_CHECKING:
    from core.gelv import Analysis, CharNote

TONE_STYLE = {"平": "bold green", "仄": "bold dark_orange", "◎": "bold cyan", "？": "dim"}
LEGEND = "平 green · 仄 orange · ◎ either (多音字) · ？ not in the table · red = violation · 韵 = rhyme"


def _pad(s: str) -> str:
    return s + " " * max(0, 2 - cell_len(s))


def char_style(cn: CharNote) -> str:
    base = TONE_STYLE.get(cn.tone_mark, "")
    if cn.violations:
        if any(not v.endswith("(严)") for v in cn.violations):
            return "bold white on red3"
        return f"{base} underline"
    if cn.is_rhyme_pos:
        return f"{base} reverse"
    return base


def render_analysis(an: Analysis, convert=None) -> Group:
    """A rich renderable of the analysis (`convert` maps displayed text, e.g. to traditional script)."""
    conv = convert or (lambda s: s)
    parts: list = []
    head = an.form + (f"《{an.cipai}》" if an.cipai else "") + (f" · {an.template}" if an.template else "")
    parts.append(Text(head, style="bold"))
    for i, la in enumerate(an.lines):
        row1 = Text(f"{i + 1:>2}  ", style="dim")
        row2 = Text("    ")
        for cn in la.chars:
            row1.append(_pad(conv(cn.char)), style=char_style(cn))
            row2.append(_pad(cn.tone_mark), style=TONE_STYLE.get(cn.tone_mark, "").replace("bold ", ""))
        row1.append(la.punct or " ", style="dim")
        last = la.chars[-1] if la.chars else None
        if last is not None and last.is_rhyme_pos:
            row1.append(f" 韵·{last.rhyme_group or '?'}", style="bold magenta")
        if la.pattern:
            row2.append(" " + la.pattern, style="dim")
        parts.append(row1)
        parts.append(row2)
        for v in la.violations:
            parts.append(Text("    ✗ " + v, style="red"))
    other = [f for f in an.findings if not (f.startswith("第") and "句：" in f)]
    if other:
        parts.append(Text(""))
    for f in other:
        parts.append(Text("• " + f, style="yellow"))
    ok = an.verdict.startswith(("合律", "合谱"))
    parts.append(Text(""))
    parts.append(Text(("✓" if ok else "✗") + an.verdict, style="bold green" if ok else "bold red"))
    if an.is_jinti:
        s = an.scores()
        parts.append(Text(
            f"押韵 {'✓' if an.rhyme_ok else '✗'}  粘对 {'✓' if an.nian_dui_ok else '✗'}  "
            f"平仄(宽) {an.relaxed_lines_ok}/{len(an.lines)}  平仄(严) {'✓' if an.tone_strict_ok else '✗'}  "
            f"孤平 {s['gu_ping']}  三平尾 {s['san_ping_wei']}", style="dim"))
    parts.append(Text(LEGEND, style="dim italic"))
    return Group(*parts)


def violations(an: Analysis) -> list[str]:
    """Every violation, line by line (for tests and plain output)."""
    out = []
    for i, la in enumerate(an.lines):
        out += [f"{i + 1}: {v}" for v in la.violations]
    return out


class AnalysisView(VerticalScroll):
    """Scrollable analysis; empty until `show` is called."""

    DEFAULT_CLASSES = "analysis"

    def __init__(self, placeholder: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.placeholder = placeholder
        self.analysis: Analysis | None = None

    def compose(self):
        yield Static(Text(self.placeholder, style="italic dim"), id="analysis-body")

    def show(self, an: Analysis | None, convert=None) -> None:
        self.analysis = an
        body = self.query_one("#analysis-body", Static)
        body.update(render_analysis(an, convert) if an is not None else Text(self.placeholder, style="italic dim"))
        self.scroll_home(animate=False)
