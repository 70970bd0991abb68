"""Shiren's terminal app (Textual): `shiren tui`. Offline; same core, same database as the bot."""
