"""`shiren write`: poems from the command line, one request or a JSONL batch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from core.types import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, PoemRequest, RequestError

REQUEST_FIELDS = ("form", "title", "keywords", "acrostic", "first_line", "cipai", "n", "seed", "temperature", "top_p")


def request_from_dict(d: dict) -> PoemRequest:
    unknown = set(d) - set(REQUEST_FIELDS)
    if unknown:
        raise RequestError(f"unknown request field(s): {', '.join(sorted(unknown))}")
    if "form" not in d:
        raise RequestError("each request needs a form")
    kw = d.get("keywords") or ()
    if isinstance(kw, str):
        kw = [k for k in kw.replace("，", ",").split(",") if k.strip()]
    d = {**d, "keywords": tuple(kw)}
    return PoemRequest(**d)


def load_poet(model_dir: Path | None, adapter: Path | None, *, critic: bool = True, candidates: int | None = None,
              polish: bool = True, force_critic: bool = False, device: str | None = None, contrast: bool = True):
    """The poet for a command: the active adapter, and the shipped critic unless `critic` is False (used only
    once promoted, or with `force_critic`); on `device` (None: SHIREN_DEVICE, else CUDA when present);
    contrastive decoding against the shipped amateur unless `contrast` is False (core.contrast)."""
    import logging

    from core.poet import DEFAULT_CANDIDATES, Poet

    logging.basicConfig(format="%(message)s", level=logging.WARNING)  # the one line when the critic is missing
    if not critic:
        logging.getLogger("shiren.poet").warning("writing without the critic (--no-critic)")
    if candidates is not None and not 1 <= candidates <= 64:
        raise RequestError("--candidates must be 1–64")
    mode = None if not critic else ("on" if force_critic else "auto")
    return Poet.load(model_dir, adapter if adapter is not None else "auto", critic=mode,
                     candidates=candidates or DEFAULT_CANDIDATES, polish=polish, device=device,
                     amateur="auto" if contrast else None)


def write(
    form: str | None = typer.Option(None, "--form", "-f", help="五绝 七绝 五律 七律 词 (or qijue, 七言绝句 …)."),
    title: str = typer.Option("", "--title", "-t", help="Title or topic."),
    keywords: str = typer.Option("", "--keywords", "-k", help="Comma-separated words that must appear."),
    acrostic: str = typer.Option("", "--acrostic", "-a", help="藏头: these chars start the lines."),
    first_line: str = typer.Option("", "--first-line", help="续写: the poem's first line."),
    cipai: str = typer.Option("", "--cipai", "-c", help="词牌 for a 词, e.g. 浣溪沙."),
    n: int = typer.Option(1, "-n", help="Number of poems."),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same request, same model → same poems."),
    temperature: float = typer.Option(DEFAULT_TEMPERATURE, "--temperature"),
    top_p: float = typer.Option(DEFAULT_TOP_P, "--top-p"),
    batch: Path | None = typer.Option(None, "--batch", help="JSONL file, one request per line."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    explain: bool = typer.Option(False, "--explain", help="Show the 格律 annotation of each poem."),
    model_dir: Path | None = typer.Option(None, "--model-dir", envvar="SHIREN_MODEL_DIR"),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter dir (default: the active one)."),
    candidates: int | None = typer.Option(None, "--candidates", help="Drafts per poem the critic chooses among (default 8)."),
    no_polish: bool = typer.Option(False, "--no-polish", help="Choose among drafts, but do not mend the chosen poem."),
    no_critic: bool = typer.Option(False, "--no-critic", help="Rank by likelihood alone (no choosing, no mending)."),
    use_critic: bool = typer.Option(False, "--critic", help="Use the shipped critic even before it is promoted "
                                                          "(docs/critic.md)."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N (default: SHIREN_DEVICE, "
                                                             "else CUDA when torch sees a GPU)."),
    no_contrast: bool = typer.Option(False, "--no-contrast", help="Plain sampling: no contrastive decoding against "
                                                                  "the shipped amateur (docs/decode-sweep.md)."),
) -> None:
    """Write poems on request, with guaranteed form, rhyme and tonal pattern."""
    if batch is None and not form:
        raise RequestError("give --form (五绝 七绝 五律 七律 词) or --batch FILE.jsonl")
    if batch is not None:
        _write_batch(batch, json_output, load_poet(model_dir, adapter, critic=not no_critic, candidates=candidates,
                                                   polish=not no_polish, force_critic=use_critic, device=device,
                                                   contrast=not no_contrast))
        return
    req = request_from_dict(dict(form=form, title=title, keywords=keywords, acrostic=acrostic, first_line=first_line,
                                 cipai=cipai, n=n, seed=seed, temperature=temperature, top_p=top_p))
    poet = load_poet(model_dir, adapter, critic=not no_critic, candidates=candidates, polish=not no_polish,
                     force_critic=use_critic, device=device, contrast=not no_contrast)
    poems = poet.write(req)
    if json_output:
        out = [p.to_dict() | ({"doubts": doubts_json(poet, p)} if explain else {}) for p in poems]
        print(json.dumps({"request": poet.validate(req).to_dict(), "poems": out}, ensure_ascii=False))
        return
    _print_poems(poems, explain, poet)


def doubts_json(poet, poem) -> list[dict]:
    return [{"pos": i, "char": c, "doubt": d} for i, c, d in poet.doubts(poem)]


def doubt_places(poet, poem) -> str:
    """「X」(第n句)、… : the characters the critic doubts most, for the explain views ('' without a critic)."""
    from core.revise import poem_body

    body = poem_body(poem.text)
    seps = "，。？！；、："
    return "、".join(f"「{c}」(第{sum(1 for ch in body[:i] if ch in seps) + 1}句)" for i, c, _ in poet.doubts(poem))


def doubt_line(poet, poem) -> str:
    places = doubt_places(poet, poem)
    return f"评点 · the critic doubts {places}" if places else ""


def _write_batch(path: Path, json_output: bool, poet) -> None:
    from core.types import ShirenError

    if not path.is_file():
        raise RequestError(f"no such batch file: {path}")
    for i, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            req = request_from_dict(json.loads(line))
            out = {"request": poet.validate(req).to_dict(), "poems": [p.to_dict() for p in poet.write(req)]}
        except json.JSONDecodeError as e:
            out = {"line": i, "error": f"not JSON: {e}"}
        except (ShirenError, TypeError) as e:
            out = {"line": i, "error": str(e)}
        if json_output:
            print(json.dumps(out, ensure_ascii=False), flush=True)
        elif "error" in out:
            print(f"line {i}: error: {out['error']}", file=sys.stderr)
        else:
            from core.types import Poem

            _print_poems([Poem(**p) for p in out["poems"]], False)


def _print_poems(poems, explain: bool, poet=None) -> None:
    from rich.console import Console
    from rich.panel import Panel
    from rich.text import Text

    con = Console()
    for p in poems:
        head = p.title or (p.cipai if p.form == "词" else "无题")
        sub = f"{p.form}{'·' + p.cipai if p.cipai and p.form == '词' else ''}"
        ok = p.scores
        marks = f"押韵 {'✓' if ok.get('rhyme') else '✗'}  平仄 {'✓' if ok.get('tone_relaxed') else '✗'}"
        con.print(Panel(Text(p.text, justify="center", style="bold"), title=f"《{head}》", subtitle=f"{sub}  {marks}",
                        expand=False, padding=(1, 4)))
        if explain:
            from core.gelv import analyze
            from core.gelv.render import render

            con.print(render(analyze(p.text, form=None if p.form == "词" else p.form, cipai=p.cipai or None)))
            if poet is not None:
                line = doubt_line(poet, p)
                if line:
                    con.print(line, highlight=False)
                for e in p.scores.get("mended", []):
                    con.print(f"  mended: 第{e['line'] + 1}句 「{e['old']}」→「{e['new']}」", highlight=False)
