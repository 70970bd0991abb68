"""Inline keyboards. Callback data is short ("r:<poem id>:<stars>", …) and always re-checked
against the clicking user on arrival: a button never carries authority of its own."""

from __future__ import annotations

from telegram import InlineKeyboardButton as Btn
from telegram import InlineKeyboardMarkup

from bot.texts import t
from core.types import FORMS

CIPAI_PAGE = 12


def poem_keyboard(poem_id: int, rating: int | None = None, lang: str = "zh") -> InlineKeyboardMarkup:
    """⭐1–⭐5 (the current rating checked), another, explain, picture card, delete."""
    stars = [Btn(f"{'✅' if rating == n else '⭐'}{n}", callback_data=f"r:{poem_id}:{n}") for n in range(1, 6)]
    actions = [
        Btn(t(lang, "btn_another"), callback_data=f"a:{poem_id}"),
        Btn(t(lang, "btn_explain"), callback_data=f"x:{poem_id}"),
        Btn(t(lang, "btn_card"), callback_data=f"c:{poem_id}"),
        Btn(t(lang, "btn_revise"), callback_data=f"e:{poem_id}"),
        Btn(t(lang, "btn_delete"), callback_data=f"d:{poem_id}"),
    ]
    return InlineKeyboardMarkup([stars, actions])


def line_picker_keyboard(poem_id: int, n_lines: int, lang: str = "zh") -> InlineKeyboardMarkup:
    """✏️'s next step: one button per line (句) of the poem, four to a row ("ev:<poem id>:<line>")."""
    btns = [Btn(t(lang, "btn_line", n=n), callback_data=f"ev:{poem_id}:{n}") for n in range(1, n_lines + 1)]
    return InlineKeyboardMarkup([btns[i:i + 4] for i in range(0, len(btns), 4)])


def form_keyboard(token: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[Btn(f, callback_data=f"pf:{token}:{f}") for f in FORMS]])


def cipai_pick_keyboard(token: str, names: list[str]) -> InlineKeyboardMarkup:
    rows = [names[i:i + 3] for i in range(0, len(names), 3)]
    return InlineKeyboardMarkup([[Btn(n, callback_data=f"pc:{token}:{n}") for n in row] for row in rows])


def cipai_browse_keyboard(names: list[str], page: int, pages: int) -> InlineKeyboardMarkup:
    rows = [[Btn(n, callback_data=f"cp:{n}") for n in names[i:i + 3]] for i in range(0, len(names), 3)]
    nav = []
    if page > 1:
        nav.append(Btn("◀", callback_data=f"cb:{page - 1}"))
    if page < pages:
        nav.append(Btn("▶", callback_data=f"cb:{page + 1}"))
    if nav:
        rows.append(nav)
    return InlineKeyboardMarkup(rows)


def cipai_write_keyboard(name: str, lang: str = "zh") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[Btn(t(lang, "btn_write_ci", name=name), callback_data=f"cw:{name}")]])


def rate_link_keyboard(bot_username: str, poem_id: int, lang: str = "zh") -> InlineKeyboardMarkup:
    """Under a poem shared inline: one link that opens the private chat on that poem (/start p<id>)."""
    return InlineKeyboardMarkup([[Btn(t(lang, "inline_rate"), url=f"https://t.me/{bot_username}?start=p{poem_id}")]])


def settings_keyboard(default_form: str, script: str, lang: str, card_default: bool = False) -> InlineKeyboardMarkup:
    forms = [Btn(("• " if f == default_form else "") + f, callback_data=f"s:f:{f}") for f in FORMS]
    scripts = [
        Btn(("• " if script == "simplified" else "") + "简体", callback_data="s:s:simplified"),
        Btn(("• " if script == "traditional" else "") + "繁體", callback_data="s:s:traditional"),
    ]
    langs = [
        Btn(("• " if lang == "zh" else "") + "中文", callback_data="s:l:zh"),
        Btn(("• " if lang == "en" else "") + "English", callback_data="s:l:en"),
    ]
    delivery = [
        Btn(("• " if not card_default else "") + t(lang, "btn_delivery_text"), callback_data="s:c:0"),
        Btn(("• " if card_default else "") + t(lang, "btn_delivery_card"), callback_data="s:c:1"),
    ]
    return InlineKeyboardMarkup([forms, scripts, langs, delivery])


def welcome_keyboard(lang: str) -> InlineKeyboardMarkup:
    other = "en" if lang != "en" else "zh"
    return InlineKeyboardMarkup([[Btn(t(lang, "lang_button"), callback_data=f"wl:{other}")]])


def history_keyboard(page: int, pages: int) -> InlineKeyboardMarkup | None:
    nav = []
    if page > 1:
        nav.append(Btn("◀", callback_data=f"h:{page - 1}"))
    if page < pages:
        nav.append(Btn("▶", callback_data=f"h:{page + 1}"))
    return InlineKeyboardMarkup([nav]) if nav else None


def forget_keyboard(nonce: str, lang: str = "zh") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[
        Btn(t(lang, "btn_forget_yes"), callback_data=f"fg:y:{nonce}"),
        Btn(t(lang, "btn_forget_no"), callback_data=f"fg:n:{nonce}"),
    ]])
