"""Configuration and start-up: the token (missing, malformed, rejected), the API URL, admin ids, the CLI."""

from __future__ import annotations

import asyncio

import pytest
import typer
from fake_telegram import TOKEN, FakeTelegram
from telegram.error import InvalidToken
from typer.testing import CliRunner

from bot.config import BotConfig, ConfigError, check_token, file_url_for, normalize_api_url, parse_admin_ids
from bot.limits import CapacityError, ConcurrencyCap


def test_token_checks():
    assert check_token(f"  {TOKEN}\n") == TOKEN
    with pytest.raises(ConfigError, match="not set"):
        check_token(None)
    with pytest.raises(ConfigError, match="not set"):
        check_token("   ")
    for bad in ("hello", "123456:short", "abc:AAHfakeTokenForTestsOnly_abcdefghijk", TOKEN + " x"):
        with pytest.raises(ConfigError, match="malformed") as e:
            check_token(bad)
        assert bad not in str(e.value)


def test_from_env():
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": "http://127.0.0.1:8081",
           "SHIREN_ADMIN_IDS": "7, 42", "SHIREN_BOT_MAX_CONCURRENT": "4"}
    cfg = BotConfig.from_env(env)
    assert cfg.api_url == "http://127.0.0.1:8081/bot{token}"
    assert cfg.file_url == "http://127.0.0.1:8081/file/bot{token}"
    assert cfg.admin_ids == {7, 42} and cfg.max_concurrent == 4
    assert TOKEN not in repr(cfg) and TOKEN.split(":")[1] not in repr(cfg)
    assert BotConfig.from_env(env, api_url="http://h:1/bot{token}/test").api_url == "http://h:1/bot{token}/test"
    with pytest.raises(ConfigError):
        BotConfig.from_env({})
    with pytest.raises(ConfigError, match="SHIREN_ADMIN_IDS"):
        BotConfig.from_env({**env, "SHIREN_ADMIN_IDS": "7,bob"})
    with pytest.raises(ConfigError, match="SHIREN_BOT_MAX_CONCURRENT"):
        BotConfig.from_env({**env, "SHIREN_BOT_MAX_CONCURRENT": "lots"})


def test_card_chat_for_inline_cards():
    env = {"TELEGRAM_BOT_TOKEN": TOKEN}
    assert BotConfig.from_env(env).card_chat is None
    assert BotConfig.from_env({**env, "SHIREN_BOT_CARD_CHAT": "-1001234567890"}).card_chat == -1001234567890
    assert BotConfig.from_env({**env, "SHIREN_BOT_CARD_CHAT": " @shiren_cards "}).card_chat == "@shiren_cards"
    with pytest.raises(ConfigError, match="SHIREN_BOT_CARD_CHAT"):
        BotConfig.from_env({**env, "SHIREN_BOT_CARD_CHAT": "my channel"})


def test_api_url_forms():
    assert normalize_api_url(None) == "https://api.telegram.org/bot{token}"
    assert normalize_api_url("http://x:8081/bot") == "http://x:8081/bot{token}"
    assert normalize_api_url("http://x:8081/") == "http://x:8081/bot{token}"
    assert file_url_for("https://api.telegram.org/bot{token}") == "https://api.telegram.org/file/bot{token}"
    with pytest.raises(ConfigError):
        normalize_api_url("ftp://x")
    assert parse_admin_ids("") == frozenset() and parse_admin_ids("1;2") == {1, 2}


def test_cli_missing_or_malformed_token_exits_2(monkeypatch):
    from bot.cli import bot

    app = typer.Typer()
    app.command()(bot)
    runner = CliRunner()
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    res = runner.invoke(app, [])
    assert res.exit_code == 2 and "TELEGRAM_BOT_TOKEN is not set" in res.output
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "12345:nope")
    res = runner.invoke(app, ["--api-url", "http://127.0.0.1:9/bot{token}"])
    assert res.exit_code == 2 and "malformed" in res.output and "nope" not in res.output


def test_rejected_token_is_a_clear_error():
    """A well-formed token the server does not know: PTB's InvalidToken at initialize (cli: exit 2)."""
    from bot.app import build_application

    fake = FakeTelegram(token="987654321:AAHsomeOtherTokenXXXXXXXXXXXXXXXXXXX").start()
    try:
        app = build_application(BotConfig(token=TOKEN, api_url=fake.api_url), poet=object(), store=object(), set_commands=False)

        async def init():
            await app.initialize()

        with pytest.raises(InvalidToken):
            asyncio.run(init())
        assert fake.paths_seen and TOKEN in fake.paths_seen[0]  # it really asked the fake server
    finally:
        fake.stop()


def test_cap_without_a_store_is_this_process_alone():
    asyncio.run(_cap_checks())


async def _cap_checks():
    cap = ConcurrencyCap(1)
    async with cap.slot():
        with pytest.raises(CapacityError):
            async with cap.slot():
                pass
    async with cap.slot():
        assert cap.in_flight == 1
    assert cap.in_flight == 0 and cap.peak == 1
