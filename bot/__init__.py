"""Shiren's Telegram bot: python-telegram-bot v22 handlers around the shared Poet and Store.

The bot holds no model or SQL logic of its own: it calls `core.poet.Poet` and `db.store.Store`.
Entry points: `bot.app.build_application` (wiring) and `bot.cli.bot` (`shiren bot`).
"""
