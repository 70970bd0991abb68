"""`shiren eval`: the quality bar, measured on requests built from the test split.

Shiren (constrained decoding, active adapter) and the bare base model sampling freely are scored
side by side with the same 格律 engine and text metrics, per form and overall.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict

import torch

from core.corpus_lines import CorpusLines
from core.gelv import analyze, cipai_patterns, top_cipai
from core.prompt import EOS, body_text, header
from core.requests import LINES
from core.types import PoemRequest, ShirenError
from core.variants import variants_in
from training.metrics import bleu, distinct_n, repeated_char_rate, rouge_l
from training.sft_data import clauses

EVAL_FORMS = ("五绝", "七绝", "五律", "七律", "词")
KINDS = ("title", "keywords", "acrostic", "first_line", "title+keywords")


def eval_requests(test_rows: list[dict], per_form: int = 40, seed: int = 0) -> list[tuple[PoemRequest, dict]]:
    """Requests each satisfied by a reference poem of the test split (cycled over the request kinds)."""
    rng = random.Random(seed)
    top = set(top_cipai(30))
    out = []
    for form in EVAL_FORMS:
        rows = [r for r in test_rows if r["form"] == form and (form != "词" or r["cipai"] in top)]
        rows.sort(key=lambda r: r["id"])
        rng.shuffle(rows)
        for i, r in enumerate(rows[:per_form]):
            kind = KINDS[i % len(KINDS)]
            cl = clauses(r["text"])
            title = r["title"] if r["title"] != r["cipai"] else ""
            kw: tuple[str, ...] = ()
            if "keywords" in kind:
                c = rng.choice(cl)
                s = rng.randrange(0, max(1, len(c) - 1))
                kw = (c[s : s + 2],)
            req = PoemRequest(
                form=form, cipai=r["cipai"] if form == "词" else "", title=title[:20] if "title" in kind else "",
                keywords=kw, acrostic="".join(c[0] for c in cl[: (4 if form != "词" else 3)]) if kind == "acrostic" else "",
                first_line=cl[0] if kind == "first_line" else "", seed=1000 + len(out),
            )
            out.append((req, r))
    return out


def format_ok(text: str, req: PoemRequest) -> bool:
    cl = clauses(text)
    if req.form in LINES:
        chars, n = LINES[req.form]
        return [len(c) for c in cl] == [chars] * n and re.sub(r"[^，。？！；]", "", text) == "，。" * (n // 2)
    return tuple(len(c) for c in cl) in {p.lengths for p in cipai_patterns(req.cipai)}


def score_poem(text: str, req: PoemRequest, lines: CorpusLines | None) -> dict:
    fmt = format_ok(text, req)
    rhyme = tone = rhyme_c = tone_c = False
    rare = 0
    if fmt:
        try:
            a = analyze(text, form=None if req.form == "词" else req.form, cipai=req.cipai or None)
            rhyme, tone = bool(a.rhyme_ok), bool(a.tone_relaxed_ok) if req.form != "词" else None
            # the same, as a reader hears it: common readings of 多音字 only (core.gelv.usage)
            rhyme_c = bool(a.common_rhyme_ok)
            tone_c = bool(a.common_tone_relaxed_ok) if req.form != "词" else None
            rare = len(a.rare_readings)
        except (ShirenError, ValueError):
            pass
    cl = clauses(text)
    flat = text.replace("\n", "")
    return {
        "format": fmt, "rhyme": rhyme, "tone": tone, "rhyme_common": rhyme_c, "tone_common": tone_c,
        "rare_readings": rare, "variant_chars": len(variants_in(text)),
        "acrostic": all(i < len(cl) and cl[i][0] == ch for i, ch in enumerate(req.acrostic)) if req.acrostic else None,
        "keywords": all(k in flat for k in req.keywords) if req.keywords else None,
        "copied": bool(lines is not None and any(c in lines for c in cl if c != req.first_line)),
        "repeat": repeated_char_rate(text),
    }


@torch.inference_mode()
def free_sample(model, tok, req: PoemRequest, seed: int, temperature: float = 0.8, top_p: float = 0.95) -> str:
    """The base model sampling freely from the same header (stock `generate`, no constraints)."""
    ids = tok(header(req.form, title=req.title, cipai=req.cipai), add_special_tokens=False, return_tensors="pt")["input_ids"]
    torch.manual_seed(seed)
    n_new = (sum(LINES[req.form]) and LINES[req.form][0] * LINES[req.form][1] * 2) if req.form in LINES else 160
    out = model.generate(ids, do_sample=True, temperature=temperature, top_p=top_p, max_new_tokens=n_new,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=False).split(EOS)[0]
    text = re.sub(r"<[^>]*>", "", text)
    return re.sub(r"([。？！；])", r"\1\n", text).strip()


@torch.inference_mode()
def perplexity(model, tok, texts_and_reqs: list[tuple[str, PoemRequest]]) -> float:
    """Per-token perplexity of the poems (body only) under `model`, given form/title/词牌."""
    nll, n = 0.0, 0
    for text, req in texts_and_reqs:
        p = tok(header(req.form, title=req.title, cipai=req.cipai), add_special_tokens=False)["input_ids"]
        b = tok(body_text(text) + EOS, add_special_tokens=False)["input_ids"]
        x = torch.tensor([p + b])
        logits = model(input_ids=x).logits[0, len(p) - 1 : -1].float()
        nll += torch.nn.functional.cross_entropy(logits, torch.tensor(b), reduction="sum").item()
        n += len(b)
    return math.exp(nll / max(1, n))


def aggregate(rows: list[dict]) -> dict:
    def rate(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    texts = [r["text"] for r in rows]
    return {
        "n": len(rows), "format": rate("format"), "rhyme": rate("rhyme"), "tone_relaxed": rate("tone"),
        "rhyme_common": rate("rhyme_common"), "tone_common": rate("tone_common"),
        "rare_per_poem": sum(r["rare_readings"] for r in rows) / max(1, len(rows)),
        "variants_per_poem": sum(r["variant_chars"] for r in rows) / max(1, len(rows)),
        "acrostic": rate("acrostic"), "keywords": rate("keywords"), "copied": rate("copied"),
        "distinct1": distinct_n(texts, 1), "distinct2": distinct_n(texts, 2),
        "repeat_rate": sum(r["repeat"] for r in rows) / max(1, len(rows)),
        "bleu": sum(r["bleu"] for r in rows) / max(1, len(rows)),
        "rouge_l": sum(r["rouge_l"] for r in rows) / max(1, len(rows)),
    }


def run_eval(poet, base_model, base_tok, test_rows: list[dict], per_form: int = 40, baseline: bool = True,
             progress: bool = True) -> dict:
    from tqdm import tqdm

    reqs = eval_requests(test_rows, per_form)
    systems: dict[str, list[dict]] = {"shiren": [], "base (free)": []}
    refused = []
    for req, ref in tqdm(reqs, desc="eval", disable=not progress, unit="req"):
        try:
            poem = poet.write(req)[0].text
        except ShirenError as e:  # refused, or a dead end on every retry: not served, and counted so
            refused.append({"request": req.to_dict(), "error": str(e)})
            continue
        norm = poet.validate(req)
        rows = [("shiren", poem, norm)]
        if baseline:
            rows.append(("base (free)", free_sample(base_model, base_tok, norm, req.seed or 0), norm))
        for name, text, r in rows:
            s = score_poem(text, r, poet.corpus_lines)
            s.update(text=text, form=r.form, bleu=bleu(text, ref["text"]), rouge_l=rouge_l(text, ref["text"]),
                     kind=_kind(r), request=r)
            systems[name].append(s)
    result: dict = {"requests": len(reqs), "refused": refused, "systems": {}}
    for name, rows in systems.items():
        if not rows:
            continue
        by_form = defaultdict(list)
        for r in rows:
            by_form[r["form"]].append(r)
        per = {f: aggregate(v) for f, v in sorted(by_form.items(), key=lambda kv: EVAL_FORMS.index(kv[0]))}
        per["overall"] = aggregate(rows)
        per["overall"]["ppl"] = perplexity(base_model, base_tok, [(r["text"], r["request"]) for r in rows])
        result["systems"][name] = per
    result["samples"] = [{"kind": r["kind"], "request": r["request"].to_dict(), "text": r["text"]}
                         for r in systems["shiren"]]
    return result


def _kind(r: PoemRequest) -> str:
    parts = [k for k, v in (("title", r.title), ("keywords", r.keywords), ("acrostic", r.acrostic),
                            ("first_line", r.first_line)) if v]
    return "+".join(parts) or "form"


def print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    cols = ["n", "format", "rhyme", "tone_relaxed", "rhyme_common", "tone_common", "rare_per_poem",
            "variants_per_poem", "acrostic", "keywords", "copied", "distinct1", "distinct2",
            "repeat_rate", "bleu", "rouge_l"]
    for name, per in result["systems"].items():
        t = Table(title=f"{name} — {result['requests']} requests from the test split"
                        + (f", {len(result['refused'])} refused" if name == "shiren" and result["refused"] else ""))
        t.add_column("form")
        for c in cols:
            t.add_column(c, justify="right")
        for form, m in per.items():
            t.add_row(form, *(_fmt(m.get(c)) for c in cols))
        con.print(t)
        con.print(f"perplexity of {name}'s poems under the base model: {per['overall']['ppl']:.1f}")


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, int):
        return str(v)
    return f"{v:.3f}"
