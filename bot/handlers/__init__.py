"""Handlers, grouped by feature. `bot.app.build_application` wires them."""
