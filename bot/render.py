"""Poems, 格律 analyses and history pages as Telegram HTML (everything inserted is escaped)."""

from __future__ import annotations

from html import escape
from typing import Any

from bot.texts import t
from core.script import to_traditional

MAX_MESSAGE = 4000  # Telegram allows 4096 characters per message
MAX_CAPTION = 1024  # and 1024 per photo caption
_ok = "✓"
_no = "✗"

def for_script(text: str, script: str | None) -> str:
    """`text` for display in the user's script (simplified is stored; traditional is converted)."""
    return to_traditional(text) if script == "traditional" else text


def stars_str(stars: int | None) -> str:
    if not stars:
        return "☆☆☆☆☆"
    return "★" * stars + "☆" * (5 - stars)


def poem_heading(form: str, title: str = "", cipai: str = "") -> str:
    if form == "词" or cipai:
        name = cipai or "词"
        return f"<b>{escape(name)}{'·' + escape(title) if title else ''}</b>"
    if title:
        return f"<b>《{escape(title)}》</b> {escape(form)}"
    return f"<b>{escape(form)}</b>"


def _gelv_badge(scores: dict[str, Any] | None) -> str:
    if not scores:
        return ""
    if scores.get("jinti"):
        ok = scores.get("rhyme") and scores.get("tone_relaxed") and scores.get("nian_dui")
        return f"格律 {_ok if ok else _no}"
    if "format" in scores:
        return f"格律 {_ok if scores.get('format') else _no}"
    return ""


def render_poem(
    text: str,
    form: str,
    *,
    title: str = "",
    cipai: str = "",
    scores: dict[str, Any] | None = None,
    model_version: str = "",
    rating: int | None = None,
    lang: str = "zh",
    script: str = "simplified",
) -> str:
    """A poem message: heading, the lines, a small footer, and the user's current rating."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    parts = [poem_heading(form, title, cipai), "", *(escape(ln) for ln in lines), ""]
    footer = " · ".join(x for x in (_gelv_badge(scores), escape(model_version)) if x)
    if footer:
        parts.append(f"<i>{footer}</i>")
    if rating:
        parts.append(t(lang, "your_rating", stars=stars_str(rating)))
    return for_script("\n".join(parts).strip(), script)


def caption(html: str) -> str:
    """A poem message as a photo caption: the whole of it when it fits Telegram's 1024 characters,
    else its heading (the card shows the poem)."""
    if len(html) <= MAX_CAPTION:
        return html
    return html.split("\n", 1)[0]  # the heading: a title is at most 30 characters


def render_record(rec, *, lang: str = "zh", script: str = "simplified") -> str:
    """render_poem for a stored `db.store.PoemRecord` (its rating included)."""
    return render_poem(rec.text, rec.form, title=rec.title, cipai=rec.cipai, scores=rec.scores,
                       model_version=rec.model_version, rating=rec.rating, lang=lang, script=script)


_FULL_SPACE = "\u3000"


def render_analysis(an, *, lang: str = "zh", script: str = "simplified", with_patterns: bool = True) -> str:
    """A 格律 analysis: per line the chars, their 平仄 marks and the expected pattern in a <pre>
    block (＾ under a violation), rhyme groups, the findings and the verdict."""
    head = escape(an.form)
    if an.cipai:
        head += f"《{escape(an.cipai)}》"
    if an.template:
        head += f" · {escape(an.template)}"
    if an.rhyme_group:
        head += f" · 押{escape(an.rhyme_group)}韵"
    rows: list[str] = []
    for la in an.lines:
        chars = "".join(cn.char for cn in la.chars)
        marks = "".join(cn.tone_mark for cn in la.chars)
        rhyme = ""
        last = la.chars[-1] if la.chars else None
        if last is not None and last.is_rhyme_pos:
            rhyme = f"  [韵 {last.rhyme_group or '?'}]"
        rows.append(f"{chars}{la.punct or _FULL_SPACE}{rhyme}")
        mark_row = marks
        if with_patterns and la.pattern:
            mark_row += f"{_FULL_SPACE}  律 {la.pattern}"
        rows.append(mark_row)
        if any(cn.violations for cn in la.chars):
            rows.append("".join("＾" if cn.violations else _FULL_SPACE for cn in la.chars).rstrip(_FULL_SPACE))
    body = "\n".join(escape(r) for r in rows)
    findings = [f for f in an.findings]
    out = [f"<b>{head}</b>", f"<pre>{body}</pre>"]
    if findings:
        out.append("\n".join("• " + escape(f) for f in findings[:20]))
    ok = an.verdict.startswith(("合律", "合谱"))
    out.append(f"<b>{'✅' if ok else '❌'} {escape(an.verdict)}</b>")
    out.append("<i>平 / 仄 · ◎ 平仄两读 · ？ 韵表未收 · ＾ 违律 · 律 = 应有平仄（中 = 可平可仄）</i>"
               if lang != "en" else
               "<i>平 level / 仄 oblique · ◎ either · ？ not in the rhyme table · ＾ breaks the rule · "
               "律 = the required pattern (中 = either)</i>")
    html = for_script("\n".join(out), script)
    if len(html) > MAX_MESSAGE and with_patterns:
        return render_analysis(an, lang=lang, script=script, with_patterns=False)
    if len(html) > MAX_MESSAGE:
        html = for_script(f"<b>{head}</b>\n" + "\n".join("• " + escape(f) for f in findings[:10])
                          + f"\n<b>{escape(an.verdict)}</b>", script)
    return html


def render_history(records, *, total: int, page: int, pages: int, search: str = "",
                   lang: str = "zh", script: str = "simplified") -> str:
    """One page of /history: id, date, heading, the first line and the rating of each poem."""
    if not total:
        return t(lang, "history_empty")
    s = f" 「{escape(search)}」" if search else ""
    parts = [t(lang, "history_head", search=s, total=total, page=page, pages=pages)]
    for rec in records:
        first = next((ln for ln in rec.text.split("\n") if ln.strip()), "")
        when = rec.created.strftime("%m-%d") if rec.created else ""
        rating = stars_str(rec.rating) if rec.rating else t(lang, "unrated")
        parts.append(f"\n#{rec.id} · {when} · {poem_heading(rec.form, rec.title, rec.cipai)} · {rating}\n"
                     f"{escape(first)}")
    return for_script("\n".join(parts), script)


def poem_text_from_message(text: str) -> str:
    """Pull the poem lines out of a message (e.g. one of the bot's own poem messages): the lines made
    of Chinese characters and punctuation, without headings like 《…》 or footers."""
    keep = []
    for ln in (text or "").split("\n"):
        s = ln.strip()
        if not s or s.startswith(("《", "<", "#", "•")):
            continue
        han = sum(1 for c in s if "\u3400" <= c <= "\u9fff")
        if han >= 3 and all("\u3400" <= c <= "\u9fff" or c in "，。？！；、：,.?!; \u3000" for c in s):
            keep.append(s)
    return "\n".join(keep)
