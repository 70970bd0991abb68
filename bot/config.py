"""BotConfig: everything the bot reads from the environment, validated once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.types import ShirenError

# "<bot id>:<secret>" as issued by @BotFather (the secret is 35 chars today; accept 20+).
TOKEN_RE = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{20,100}$")
DEFAULT_API_URL = "https://api.telegram.org/bot{token}"


class ConfigError(ShirenError):
    """A start-up configuration problem; the message is one clear line (never contains the token)."""


def check_token(token: str | None) -> str:
    """The stripped token, or ConfigError saying what is wrong (without echoing it)."""
    if token is None or not token.strip():
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token "
            "(export TELEGRAM_BOT_TOKEN=123456789:AA...)"
        )
    token = token.strip()
    if not TOKEN_RE.match(token):
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is malformed: a token looks like 123456789:AA... (digits, a colon, "
            "then letters, digits, '-' or '_') — copy it again from @BotFather"
        )
    return token


def normalize_api_url(url: str | None) -> str:
    """A PTB base_url with a `{token}` placeholder, e.g. http://127.0.0.1:8081/bot{token}.

    Accepts a full template, a URL ending in /bot, or a bare server root (…/bot{token} is added).
    """
    if not url or not url.strip():
        return DEFAULT_API_URL
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"TELEGRAM_API_URL must start with http:// or https:// (got {url.split('{')[0]!r})")
    if "{token}" in url:
        return url
    url = url.rstrip("/")
    return url + "{token}" if url.endswith("/bot") else url + "/bot{token}"


def file_url_for(api_url: str) -> str:
    """The matching base_file_url: …/bot{token} → …/file/bot{token}."""
    if api_url == DEFAULT_API_URL:
        return "https://api.telegram.org/file/bot{token}"
    head, sep, tail = api_url.rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else api_url


def parse_admin_ids(value: str | None) -> frozenset[int]:
    """"1, 2,3" → {1, 2, 3}; ConfigError on anything that is not an integer id."""
    ids: set[int] = set()
    for part in (value or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            ids.add(int(part))
        except ValueError:
            raise ConfigError(f"SHIREN_ADMIN_IDS must be a comma list of Telegram user ids (bad entry {part!r})") from None
    return frozenset(ids)


def parse_chat(value: str | None) -> int | str | None:
    """A chat for SHIREN_BOT_CARD_CHAT: a numeric id (-100…) or an @channel username; None if unset."""
    value = (value or "").strip()
    if not value:
        return None
    if re.fullmatch(r"-?\d{1,20}", value):
        return int(value)
    if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", value):
        return value
    raise ConfigError(f"SHIREN_BOT_CARD_CHAT must be a chat id (e.g. -1001234567890) or an @channel name (got {value!r})")


def _int(env: Mapping[str, str], name: str, default: int, low: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer (got {raw!r})") from None
    if v < low:
        raise ConfigError(f"{name} must be at least {low} (got {v})")
    return v


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {raw!r})") from None
    if v <= 0:
        raise ConfigError(f"{name} must be positive (got {v})")
    return v


@dataclass(frozen=True)
class BotConfig:
    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    admin_ids: frozenset[int] = frozenset()
    # Per-user token bucket for generation requests: `rate_burst` at once, refilled at `rate_per_minute`.
    rate_burst: int = 5
    rate_per_minute: float = 12.0
    # Generations in flight (waiting or running) across all users; beyond it users get a "busy" reply.
    max_concurrent: int = 32
    generation_timeout: float = 120.0
    max_text_chars: int = 300
    history_page_size: int = 5
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    port: int = 8443
    webhook_secret: str | None = field(default=None, repr=False)
    database_url: str | None = field(default=None, repr=False)
    model_dir: Path | None = None
    poll_timeout: int = 30
    # Where inline mode uploads poem cards to get Telegram file ids (inline results can only show
    # photos Telegram already has): a chat id or @channel the bot may post in; None = text results only.
    card_chat: int | str | None = None
    # Several workers on one database (docs/scale.md): every `heartbeat_s` each worker renews its
    # heartbeat lease and tries for the feedback leader's lease (both live 3 × heartbeat_s); the
    # active adapter's name is polled every `adapter_poll_s`, a change reloads the poet.
    heartbeat_s: float = 5.0
    adapter_poll_s: float = 30.0

    def __post_init__(self) -> None:
        check_token(self.token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> BotConfig:
        """Read TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL, SHIREN_ADMIN_IDS, SHIREN_BOT_* ; overrides win."""
        env = os.environ if env is None else env
        overrides = {k: v for k, v in overrides.items() if v is not None}
        token = check_token(overrides.pop("token", None) or env.get("TELEGRAM_BOT_TOKEN"))
        api_url = normalize_api_url(overrides.pop("api_url", None) or env.get("TELEGRAM_API_URL"))
        model_dir = env.get("SHIREN_MODEL_DIR")
        cfg = cls(
            token=token,
            api_url=api_url,
            admin_ids=parse_admin_ids(env.get("SHIREN_ADMIN_IDS")),
            rate_burst=_int(env, "SHIREN_BOT_RATE_BURST", 5),
            rate_per_minute=_float(env, "SHIREN_BOT_RATE_PER_MIN", 12.0),
            max_concurrent=_int(env, "SHIREN_BOT_MAX_CONCURRENT", 32),
            max_text_chars=_int(env, "SHIREN_BOT_MAX_TEXT", 300),
            webhook_url=env.get("SHIREN_BOT_WEBHOOK_URL") or None,
            webhook_secret=env.get("SHIREN_BOT_WEBHOOK_SECRET") or None,
            port=_int(env, "SHIREN_BOT_PORT", 8443),
            database_url=env.get("SHIREN_DATABASE_URL") or None,
            model_dir=Path(model_dir) if model_dir else None,
            card_chat=parse_chat(env.get("SHIREN_BOT_CARD_CHAT")),
            heartbeat_s=_float(env, "SHIREN_BOT_HEARTBEAT_S", 5.0),
            adapter_poll_s=_float(env, "SHIREN_BOT_ADAPTER_POLL_S", 30.0),
        )
        return replace(cfg, **overrides) if overrides else cfg

    @property
    def file_url(self) -> str:
        return file_url_for(self.api_url)

    def redact(self, text: str) -> str:
        """`text` with the token (and its secret half) replaced by ***."""
        if not text:
            return text
        secret = self.token.split(":", 1)[-1]
        return text.replace(self.token, "<token>").replace(secret, "<token>")
