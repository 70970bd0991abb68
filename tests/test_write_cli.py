"""`shiren write` end to end through the CLI, with a tiny model saved as a model dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.testing import tiny_model_and_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_model")
    model, tok = tiny_model_and_tokenizer()
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


def shiren(args, model_dir, tmp_path):
    env = {**os.environ, "SHIREN_MODEL_DIR": str(model_dir), "SHIREN_HOME": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_write_json_and_plain(model_dir, tmp_path):
    r = shiren(["write", "--form", "七绝", "--acrostic", "春夏", "--seed", "3", "-n", "2", "--json"], model_dir, tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["poems"]) == 2
    for p in out["poems"]:
        lines = p["text"].split("\n")
        assert p["form"] == "七绝" and len(lines) == 2 and lines[0][0] == "春"
        assert p["scores"]["rhyme"] and p["scores"]["tone_relaxed"]
    again = shiren(["write", "--form", "七绝", "--acrostic", "春夏", "--seed", "3", "-n", "2", "--json"], model_dir, tmp_path)
    assert json.loads(again.stdout)["poems"] == out["poems"]  # same seed, same poems
    plain = shiren(["write", "--form", "qijue", "--title", "春夜", "--seed", "1", "--explain"], model_dir, tmp_path)
    assert plain.returncode == 0 and "《春夜》" in plain.stdout and "押韵" in plain.stdout


def test_write_batch_jsonl(model_dir, tmp_path):
    reqs = [
        {"form": "五绝", "seed": 1},
        {"form": "词", "cipai": "浣溪沙", "title": "春思", "seed": 2},
        {"form": "七律", "keywords": ["明月"], "n": 2, "seed": 3},
        {"form": "五绝", "acrostic": "春夏秋冬雪"},
        "not json",
        {"form": "七绝", "colour": "red"},
    ]
    f = tmp_path / "reqs.jsonl"
    f.write_text("\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in reqs), "utf-8")
    r = shiren(["write", "--batch", str(f), "--json"], model_dir, tmp_path)
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == 6
    assert len(out[0]["poems"]) == 1 and out[1]["poems"][0]["cipai"] == "浣溪沙"
    assert len(out[2]["poems"]) == 2 and all("明月" in p["text"] for p in out[2]["poems"])
    assert "longer than" in out[3]["error"] and "not JSON" in out[4]["error"] and "unknown request field" in out[5]["error"]


@pytest.mark.parametrize("args, message", [
    (["write"], "give --form"),
    (["write", "--form", "八绝"], "unknown form"),
    (["write", "--form", "七绝", "--first-line", "春风"], "has 7 characters"),
    (["write", "--form", "词", "--cipai", "没有这个牌"], "词牌"),
])
def test_write_errors_are_one_line(model_dir, tmp_path, args, message):
    r = shiren(args, model_dir, tmp_path)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
