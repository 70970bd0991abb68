"""`shiren db ...`: schema migrations and the privacy tools.

    shiren db upgrade                 # migrate the database to the newest schema
    shiren db current                 # which schema revision it is at
    shiren db export --user-id 7      # everything of user 7, as JSON
    shiren db forget --user-id 7      # delete user 7 and everything of theirs

The database is SHIREN_DATABASE_URL, or SQLite in the data dir; `--url` overrides both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core.types import ShirenError

app = typer.Typer(
    help="The database: schema migrations, export and deletion of a user's data.", no_args_is_help=True
)

Url = Annotated[
    str | None,
    typer.Option("--url", help="Database URL (default: SHIREN_DATABASE_URL, else SQLite in the data dir)."),
]
UserId = Annotated[int, typer.Option("--user-id", help="The user's id.")]


def _fail(e: Exception) -> typer.Exit:
    typer.echo(f"Error: {e}", err=True)
    return typer.Exit(1)


@app.command()
def upgrade(
    url: Url = None, revision: Annotated[str, typer.Option(help="Target revision.")] = "head"
) -> None:
    """Run the schema migrations up to the newest revision (or --revision); print the revision."""
    from db import migrate
    from db.engine import make_engine, safe_url

    try:
        engine = make_engine(url)
        try:
            before = migrate.current_revision(engine)
            after = migrate.upgrade(engine, revision)
        finally:
            engine.dispose()
    except ShirenError as e:
        raise _fail(e) from None
    what = "already at" if before == after else f"upgraded from {before or 'empty'} to"
    typer.echo(f"{safe_url(engine)}: {what} revision {after}")


@app.command()
def current(url: Url = None) -> None:
    """Print the database's schema revision and whether it is the newest. Exit 1 if it is not."""
    from db import migrate
    from db.engine import make_engine, safe_url

    try:
        engine = make_engine(url)
        try:
            rev = migrate.current_revision(engine)
        finally:
            engine.dispose()
    except ShirenError as e:
        raise _fail(e) from None
    head = migrate.head_revision()
    typer.echo(f"{safe_url(engine)}: revision {rev or '(empty)'}, newest {head}")
    if rev != head:
        typer.echo(f"Run `{migrate.UPGRADE_COMMAND}` to migrate.", err=True)
        raise typer.Exit(1)


@app.command()
def export(
    user_id: UserId,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here instead of stdout.")
    ] = None,
    url: Url = None,
) -> None:
    """Print (or write) everything stored about one user, as JSON."""
    from db.store import Store

    try:
        with Store(url, upgrade=False) as store:
            data = store.export_user(user_id)
    except ShirenError as e:
        raise _fail(e) from None
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if output is None:
        typer.echo(text)
    else:
        from core.atomic import write_text

        write_text(output, text + "\n")
        typer.echo(f"Wrote {output}", err=True)


@app.command()
def forget(
    user_id: UserId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: Url = None,
) -> None:
    """Delete one user and everything of theirs: requests, poems, ratings (also from future training data)."""
    from db.store import Store

    try:
        with Store(url, upgrade=False) as store:
            if not yes:
                typer.confirm(
                    f"Delete user {user_id} and all their poems and ratings from {store.url}?", abort=True
                )
            found = store.forget_user(user_id)
    except ShirenError as e:
        raise _fail(e) from None
    if not found:
        typer.echo(f"No user with id {user_id}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Deleted user {user_id} and everything of theirs.")
