"""All wiring in one place: `build_application(config, ...)` and `main(config)`.

The Poet and the Store are shared clients: passed in, or opened in `post_init`, and kept in bot_data
(as are the config, the rate limiter and the global generation cap).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.config import BotConfig, ConfigError
from bot.handlers import (
    admin,
    card,
    check,
    errors,
    forget,
    history,
    inline,
    poems,
    rating,
    revise,
    settings,
    start,
)
from bot.limits import ConcurrencyCap, RateLimiter
from bot.rounds import schedule_rounds
from bot.workers import new_worker_id, run_ticks, stop_ticks, tick

log = logging.getLogger("bot")

COMMANDS = [
    ("start", "欢迎 · welcome"),
    ("help", "命令 · commands"),
    ("poem", "选择诗体作诗 · a poem in a chosen form"),
    ("acrostic", "藏头诗 · acrostic, e.g. /acrostic 春夏秋冬"),
    ("ci", "填词 / 浏览词牌 · a 词, or browse 词牌"),
    ("continue", "以首句续写 · continue from a first line"),
    ("check", "格律分析 · 格律 analysis"),
    ("revise", "改写一句 · rewrite one line of a poem"),
    ("settings", "设置 · settings"),
    ("history", "我的诗 · my poems"),
    ("forget", "删除我的数据 · delete my data"),
]
ADMIN_COMMANDS = ("stats", "retrain", "model")


class RedactTokenFilter(logging.Filter):
    """Replaces the bot token (it is part of every Bot API URL) in log messages and tracebacks."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.secrets = [s for s in (token, token.split(":", 1)[-1]) if s]

    def _clean(self, s: str) -> str:
        for secret in self.secrets:
            s = s.replace(secret, "<token>")
        return s

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 — leave malformed records to logging's own handling
            return True
        clean = self._clean(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


def install_log_redaction(token: str, handlers: list[logging.Handler] | None = None) -> RedactTokenFilter:
    """Silence httpx's per-request INFO lines (they print URLs with the token) and redact the token
    on every root handler (and on the httpx / telegram loggers themselves)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    f = RedactTokenFilter(token)
    for h in handlers if handlers is not None else logging.getLogger().handlers:
        if not any(isinstance(x, RedactTokenFilter) for x in h.filters):
            h.addFilter(f)
    for name in ("httpx", "telegram", "telegram.ext", "bot"):
        lg = logging.getLogger(name)
        if not any(isinstance(x, RedactTokenFilter) for x in lg.filters):
            lg.addFilter(f)
    return f


def build_application(
    config: BotConfig,
    *,
    poet: Any = None,
    store: Any = None,
    retrain: Callable[[], dict] | None = None,
    reload: Callable[[], None] | None = None,
    scheduled_round: Callable[[], dict] | None = None,
    set_commands: bool = True,
) -> Application:
    """The configured PTB Application. `poet`/`store` None: loaded/opened in post_init (and closed
    in post_shutdown). `retrain`: optional sync `() -> dict` for /retrain; `reload`: optional sync hook
    run after /model promote|rollback; `scheduled_round`: optional sync `() -> dict`, the round run
    every SHIREN_FEEDBACK_EVERY_HOURS (bot.rounds)."""
    install_log_redaction(config.token)
    app = (
        ApplicationBuilder()
        .token(config.token)
        .base_url(config.api_url)
        .base_file_url(config.file_url)
        .concurrent_updates(True)
        .connection_pool_size(64)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    app.bot_data.update(
        config=config,
        poet=poet,
        store=store,
        owned=[],
        worker=new_worker_id(),
        limiter=RateLimiter(config.rate_burst, config.rate_per_minute),
        cap=ConcurrencyCap(config.max_concurrent, ttl_s=config.generation_timeout + 60.0),
        retrain=retrain,
        reload=reload,
        scheduled_round=scheduled_round,
        retrain_running=False,
        set_commands=set_commands,
    )
    add_handlers(app, config)
    return app


def add_handlers(app: Application, config: BotConfig) -> None:
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    admins = filters.User(user_id=sorted(config.admin_ids))

    app.add_handler(MessageHandler(filters.ChatType.GROUPS & filters.UpdateType.MESSAGE & filters.COMMAND,
                                   errors.group_command))
    for name, fn in (
        ("start", start.start),
        ("help", start.help_command),
        ("poem", poems.poem_command),
        ("acrostic", poems.acrostic),
        ("ci", poems.ci_command),
        ("continue", poems.continue_command),
        ("check", check.check),
        ("revise", revise.revise_command),
        ("settings", settings.settings),
        ("history", history.history),
        ("forget", forget.forget),
    ):
        app.add_handler(CommandHandler(name, fn, filters=private))
    for name, fn in (("stats", admin.stats), ("retrain", admin.retrain), ("model", admin.model)):
        app.add_handler(CommandHandler(name, fn, filters=private & admins))
    app.add_handler(MessageHandler(private & filters.COMMAND, errors.unknown_command))
    app.add_handler(MessageHandler(private & filters.TEXT, poems.text_topic))
    app.add_handler(MessageHandler(private & ~filters.TEXT, errors.not_text))

    for pattern, fn in (
        (r"^r:", rating.rate),
        (r"^d:", rating.delete),
        (r"^a:", poems.another),
        (r"^x:", check.explain),
        (r"^c:", card.card_button),
        (r"^e:", revise.revise_button),
        (r"^ev:", revise.revise_line),
        (r"^pf:", poems.pick_form),
        (r"^pc:", poems.pick_cipai),
        (r"^cb:", poems.browse_cipai_page),
        (r"^cp:", poems.show_cipai),
        (r"^cw:", poems.write_cipai),
        (r"^s:", settings.change_setting),
        (r"^wl:", start.welcome_language),
        (r"^h:", history.history_page),
        (r"^fg:", forget.forget_answer),
    ):
        app.add_handler(CallbackQueryHandler(fn, pattern=pattern))
    app.add_handler(CallbackQueryHandler(errors.stale_button))
    app.add_handler(InlineQueryHandler(inline.inline_query))
    app.add_error_handler(errors.on_error)


async def _post_init(app: Application) -> None:
    """Open the shared clients that were not passed in, and publish the command list."""
    d = app.bot_data
    config: BotConfig = d["config"]
    if d["store"] is None:
        from db.store import open_store

        d["store"] = await asyncio.to_thread(open_store, config.database_url)
        d["owned"].append(d["store"])
    if d["poet"] is None:
        d["poet"] = await asyncio.to_thread(load_poet, config.model_dir, d["store"])
        d["owned"].append(d["poet"])
    active = await asyncio.to_thread(d["store"].active_adapter)
    d["adapter_version"] = active.name if active is not None else None
    # Shared state across workers: the rate buckets and the generation cap live in the database.
    d["limiter"].store = d["store"]
    d["cap"].store, d["cap"].worker = d["store"], d["worker"]
    d["adapter_poll_at"] = 0.0
    await tick(app)  # heartbeat (and perhaps leadership) before the first update
    d["ticker"] = asyncio.create_task(run_ticks(app), name="worker-ticks")
    every = float(os.environ.get("SHIREN_FEEDBACK_EVERY_HOURS") or 0)
    if every > 0 and app.job_queue is not None and d.get("scheduled_round") is not None:
        # Periodic preference tuning from users' ratings (the round skips itself while too few are new).
        schedule_rounds(app.job_queue, every)
        log.info("feedback rounds every %.1f h", every)
    elif every > 0:
        log.warning("SHIREN_FEEDBACK_EVERY_HOURS is set but this bot was started without a feedback round")
    if d.get("set_commands"):
        try:
            await app.bot.set_my_commands([BotCommand(c, desc) for c, desc in COMMANDS])
        except Exception as e:  # noqa: BLE001 — a cosmetic call; never a reason not to start
            log.warning("setMyCommands failed: %s", e)
    log.info("bot @%s ready (model %s)", app.bot.username, getattr(d["poet"], "version", "?"))


async def _post_shutdown(app: Application) -> None:
    await stop_ticks(app)
    for obj in reversed(app.bot_data.get("owned", [])):
        try:
            obj.close()
        except Exception:  # noqa: BLE001
            log.warning("closing %r failed", obj, exc_info=True)


def load_poet(model_dir: Path | None, store: Any = None):
    """The base model plus the Store's active adapter (when its files exist)."""
    from core.adapters import resolve_adapter
    from core.poet import Poet

    adapter = None
    active = store.active_adapter() if store is not None else None
    if active is not None and Path(active.path).exists():
        adapter = Path(active.path)
    else:
        if active is not None:
            log.warning("active adapter %s has no files at %s; using the default", active.name, active.path)
        adapter = resolve_adapter(model_dir=model_dir, database_url=getattr(store, "url", None))
    return Poet.load(model_dir, adapter=adapter)


def setup_logging(config: BotConfig, level: int = logging.INFO) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=level)
    install_log_redaction(config.token)


def main(config: BotConfig, *, poet: Any = None, store: Any = None, retrain=None, reload=None,
         scheduled_round=None) -> None:
    """Run until interrupted: long polling by default, a webhook when config.webhook_url is set."""
    setup_logging(config)
    app = build_application(config, poet=poet, store=store, retrain=retrain, reload=reload,
                            scheduled_round=scheduled_round)
    allowed = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.INLINE_QUERY]
    if config.webhook_url:
        if importlib.util.find_spec("tornado") is None:
            raise ConfigError("webhook mode needs tornado: pip install 'python-telegram-bot[webhooks]'")
        from urllib.parse import urlsplit

        path = urlsplit(config.webhook_url).path.strip("/")  # listen where Telegram will post
        app.run_webhook(listen=config.webhook_listen, port=config.port, url_path=path,
                        webhook_url=config.webhook_url, secret_token=config.webhook_secret,
                        allowed_updates=allowed, drop_pending_updates=False)
    else:
        app.run_polling(allowed_updates=allowed, timeout=config.poll_timeout)
