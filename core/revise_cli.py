"""`shiren revise POEM_ID --line 3` (or a poem's text with --form): one line or one character rewritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from core.types import RequestError


def revise(
    poem: str = typer.Argument(..., help="A stored poem's id, or the poem's text (then give --form)."),
    line: Optional[int] = typer.Option(None, "--line", "-l", help="Rewrite this line (句, from 1)."),  # noqa: UP045
    char: Optional[int] = typer.Option(None, "--char", help="Rewrite this character (from 1, punctuation not counted)."),  # noqa: UP045
    form: Optional[str] = typer.Option(None, "--form", "-f", help="For a text: 五绝 七绝 五律 七律 词."),  # noqa: UP045
    cipai: str = typer.Option("", "--cipai", "-c", help="For a 词 given as text: its 词牌."),
    acrostic: str = typer.Option("", "--acrostic", "-a", help="For a text: heads that must stay."),
    keywords: str = typer.Option("", "--keywords", "-k", help="For a text: words that must stay."),
    seed: Optional[int] = typer.Option(None, "--seed"),  # noqa: UP045
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output."),
    no_critic: bool = typer.Option(False, "--no-critic", help="Choose the new version by likelihood alone."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", envvar="SHIREN_MODEL_DIR"),  # noqa: UP045
    database_url: Optional[str] = typer.Option(None, "--database-url", envvar="SHIREN_DATABASE_URL"),  # noqa: UP045
) -> None:
    """Rewrite one line or one character of a poem, keeping the rest and every 格律 guarantee; a stored
    poem's revision is stored too, linked to it."""
    from core.revise import RevisionTarget
    from core.write_cli import _print_poems, load_poet, request_from_dict

    target = RevisionTarget(line=line, char=char)
    text = poem.strip()
    stored = text.lstrip("#").isdigit() and len(text) <= 18
    if stored:
        from db.store import Store

        with Store(database_url) as store:
            rec = store.get_poem(int(text.lstrip("#")))
        if rec is None:
            raise RequestError(f"no poem #{text.lstrip('#')} in the database")
        req, text = rec.request, rec.text
    else:
        if not form and not cipai:
            raise RequestError('give the form of the text: shiren revise "…" --form 七绝 --line 3')
        req = request_from_dict(dict(form="词" if cipai else form, cipai=cipai, acrostic=acrostic, keywords=keywords))
    poet = load_poet(model_dir, None, critic=not no_critic)
    new = poet.revise(req, text, target, seed=seed)
    new_id = None
    if stored:
        with Store(database_url) as store:
            new_id = store.record_revision(rec.user_id, rec.id, new, rec.adapter_version)
    if json_output:
        print(json.dumps({"poem": new.to_dict(), "id": new_id, "revised_from": rec.id if stored else None},
                         ensure_ascii=False))
        return
    _print_poems([new], False)
    if new_id is not None:
        typer.echo(f"stored as poem #{new_id}, a revision of #{rec.id}")



