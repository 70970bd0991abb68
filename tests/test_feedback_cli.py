"""`shiren model list/promote/rollback`, `shiren train feedback`, and the bot / app / JobQueue entry points."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from db.store import Store
from training import feedback as fb
from training.feedback_cli import feedback, model_app

runner = CliRunner()


def _store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'shiren.db'}")


def _fake_adapter(path):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    (path / "adapter_model.safetensors").write_bytes(b"x")
    return path


def test_model_list_promote_rollback(tmp_path):
    url = f"sqlite:///{tmp_path / 'shiren.db'}"
    with _store(tmp_path) as store:
        store.add_adapter("sft", str(_fake_adapter(tmp_path / "a" / "sft")), None, {}, status="active")
        store.add_adapter("fb-1", str(_fake_adapter(tmp_path / "a" / "fb-1")), "sft",
                          {"active": {"preference": 2.0}, "candidate": {"preference": 2.5, "format": 1.0}},
                          status="candidate")
        store.add_adapter("fb-gone", str(tmp_path / "a" / "missing"), "sft", {}, status="candidate")
    out = runner.invoke(model_app, ["list", "--database-url", url])
    assert out.exit_code == 0, out.output
    assert "▶ sft" in out.output and "fb-1" in out.output and "pref 2.000→2.500" in out.output
    out = runner.invoke(model_app, ["promote", "fb-gone", "--database-url", url])
    assert out.exit_code == 1 and "no files" in out.output
    out = runner.invoke(model_app, ["promote", "nope", "--database-url", url])
    assert out.exit_code == 1 and "nope" in out.output
    out = runner.invoke(model_app, ["promote", "fb-1", "--database-url", url])
    assert out.exit_code == 0 and "fb-1 is now the active adapter" in out.output
    out = runner.invoke(model_app, ["rollback", "--database-url", url])
    assert out.exit_code == 0 and "sft is the active adapter again" in out.output
    out = runner.invoke(model_app, ["rollback", "--database-url", url])
    assert out.exit_code == 1


def _feedback_app():
    app = typer.Typer()
    app.command()(feedback)
    return app


def test_train_feedback_skips_and_respects_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIREN_HOME", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'shiren.db'}"
    _store(tmp_path).close()
    out = runner.invoke(_feedback_app(), ["--min-ratings", "5", "--database-url", url])
    assert out.exit_code == 0 and "0 new ratings" in out.output and "5 needed" in out.output
    with fb.feedback_lock(tmp_path):
        out = runner.invoke(_feedback_app(), ["--force", "--database-url", url])
    assert out.exit_code == 4 and "already running" in out.output


def test_bot_round_and_tui_round(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIREN_HOME", str(tmp_path))
    with _store(tmp_path) as store:
        r = fb.bot_round(store, min_new_ratings=3)
        assert r["outcome"] == "skipped" and "3 needed" in r["message"]
        seen = []
        # No model here: the forced round fails, is recorded as failed, and says why.
        res = fb.tui_round(store, lambda f, line: seen.append((f, line)), base_dir=tmp_path / "no-model")
        assert res["outcome"] == "failed" and "no model" in res["message"]
        assert store.list_runs()[0].outcome == "failed" and seen[-1][0] == 1.0
