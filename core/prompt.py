"""The sequence format shared by pretraining, SFT and generation.

    <bos><七绝><牌>浣溪沙<题>静夜思<关键>明月、故乡<藏头>春夏<首句>床前明月光<sep>床前明月光，疑是地上霜。…<eos>

Pretraining uses form, 词牌 and title; SFT adds keywords, acrostic and first line. The body is the
poem with its punctuation and no newlines: punctuation alone marks the lines.
"""

from __future__ import annotations

PAD, UNK, BOS, EOS, SEP = "<pad>", "<unk>", "<bos>", "<eos>", "<sep>"
ALL_FORMS = ("五绝", "七绝", "五律", "七律", "排律", "古体", "词")
FORM_TOKENS = {f: f"<{f}>" for f in ALL_FORMS}
TITLE, CIPAI, KEYWORDS, ACROSTIC, FIRST_LINE = "<题>", "<牌>", "<关键>", "<藏头>", "<首句>"
FIELD_TOKENS = (TITLE, CIPAI, KEYWORDS, ACROSTIC, FIRST_LINE)
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS, SEP, *FORM_TOKENS.values(), *FIELD_TOKENS]
KEYWORD_SEP = "、"


def header(
    form: str,
    *,
    title: str = "",
    cipai: str = "",
    keywords: tuple[str, ...] | list[str] = (),
    acrostic: str = "",
    first_line: str = "",
) -> str:
    """The control header, ending with <sep>: everything the model is conditioned on."""
    parts = [BOS, FORM_TOKENS[form]]
    if cipai:
        parts += [CIPAI, cipai]
    if title:
        parts += [TITLE, title]
    if keywords:
        parts += [KEYWORDS, KEYWORD_SEP.join(keywords)]
    if acrostic:
        parts += [ACROSTIC, acrostic]
    if first_line:
        parts += [FIRST_LINE, first_line]
    parts.append(SEP)
    return "".join(parts)


def body_text(text: str) -> str:
    """A poem's text (lines separated by newlines) as the model sees it."""
    return text.replace("\n", "")


def training_text(form: str, body: str, **fields: object) -> str:
    return header(form, **fields) + body_text(body) + EOS  # type: ignore[arg-type]
