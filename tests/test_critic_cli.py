"""`shiren write` with and without the critic, `shiren revise` from text and from a stored poem."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.testing import tiny_critic, tiny_model_and_tokenizer
from core.types import Poem, PoemRequest


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    model, tok = tiny_model_and_tokenizer()
    model.save_pretrained(str(d / "model"))
    tok.save_pretrained(str(d / "model"))
    c = tiny_critic(tok)
    c.save(d / "critic", tokenizer_json=c.tokenizer_json)
    return d


def shiren(args, dirs, home, critic=True):
    env = {**os.environ, "SHIREN_MODEL_DIR": str(dirs / "model"), "SHIREN_HOME": str(home),
           "SHIREN_CRITIC_DIR": str(dirs / ("critic" if critic else "missing"))}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True, env=env, timeout=300)


def test_write_with_critic_candidates_and_explain(dirs, tmp_path):
    r = shiren(["write", "--form", "七绝", "--seed", "3", "--candidates", "12", "--json", "--explain"], dirs, tmp_path)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)["poems"][0]
    assert "critic" in p["scores"] and len(p["doubts"]) == 3
    r = shiren(["write", "--form", "五律", "--seed", "3", "--explain"], dirs, tmp_path)
    assert r.returncode == 0 and "the critic doubts" in r.stdout
    plain = shiren(["write", "--form", "七绝", "--seed", "3", "--no-polish", "--json"], dirs, tmp_path)
    assert "mended" not in json.loads(plain.stdout)["poems"][0]["scores"]


def test_without_the_critic_one_clear_line(dirs, tmp_path):
    for args, critic in ((["--no-critic"], True), ([], False)):
        r = shiren(["write", "--form", "七绝", "--seed", "3", "--json", *args], dirs, tmp_path, critic=critic)
        assert r.returncode == 0, r.stderr
        assert "critic" not in json.loads(r.stdout)["poems"][0]["scores"]
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "writing without the critic" in lines[0], r.stderr


def test_revise_text_and_stored_poem(dirs, tmp_path):
    from core.poet import Poet
    from db.store import Store

    model, tok = tiny_model_and_tokenizer()
    poet = Poet(model, tok)
    req = PoemRequest(form="七绝", seed=5)
    poem: Poem = poet.write(req)[0]
    r = shiren(["revise", poem.text, "--form", "七绝", "--line", "3", "--seed", "1", "--json"], dirs, tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["poem"]["scores"]["revised"] == {"line": 3}
    with Store(f"sqlite:///{tmp_path / 'shiren.db'}") as store:
        uid = store.ensure_user("cli", "me")
        (pid,) = store.record_poems(uid, req, [poem])
    r = shiren(["revise", str(pid), "--line", "2", "--json"], dirs, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["revised_from"] == pid
    with Store(f"sqlite:///{tmp_path / 'shiren.db'}") as store:
        assert store.get_poem(out["id"]).revised_from == pid
    r = shiren(["revise", str(pid), "--char", "99"], dirs, tmp_path)
    assert r.returncode == 2 and "no character 99" in r.stderr and "Traceback" not in r.stderr
