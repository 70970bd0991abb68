"""The corpus pipeline on a miniature tarball of real poems: cleaning, forms, split, tokenizer, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.prompt import header
from training import corpus
from training.clean import classify, clean_body
from training.npm_source import SourceError, integrity_of, local_tarball
from training.prepare import MANIFEST, PrepareError, build, is_up_to_date


@pytest.fixture
def built(mini_tarball, tmp_path) -> tuple[Path, dict]:
    out = tmp_path / "dataset"
    return out, build(mini_tarball, out, integrity_of(mini_tarball))


def all_rows(out: Path) -> list[dict]:
    return [r for s in corpus.SPLITS for r in corpus.load_split(out, s)]


def test_forms_titles_and_simplification(built):
    out, manifest = built
    rows = {r["title"]: r for r in all_rows(out)}
    assert rows["静夜思"]["form"] == "五绝"
    assert rows["登高"]["form"] == "七律"
    assert rows["山居秋暝"]["form"] == "五律"
    assert rows["早发白帝城"]["form"] == "七绝"
    assert rows["静夜思"]["title_trad"] == "靜夜思"
    # Simplified text, with the traditional original kept.
    assert "渚清沙白鸟飞回" in rows["登高"]["text"]
    assert "渚清沙白鳥飛迴" in rows["登高"]["text_trad"] or "渚清沙白鳥飛回" in rows["登高"]["text_trad"]
    ci = [r for r in rows.values() if r["form"] == "词"]
    assert {r["cipai"] for r in ci} == {"浣溪沙", "水调歌头", "念奴娇", "如梦令", "声声慢"}
    assert all(r["dynasty"] == "宋" for r in ci)
    # Popularity joined from rank/ on author + title.
    assert rows["登高"]["popularity"] > 0


def test_drops_missing_chars_duplicates_and_error_folder(built):
    out, manifest = built
    rows = all_rows(out)
    assert manifest["dropped"] == {"missing or foreign chars": 1, "duplicate": 1}
    assert len(rows) == 11 + 5
    assert not any("坏" in r["text"] for r in rows)  # quantangshi/error/ is skipped
    assert len({r["id"] for r in rows}) == len(rows)


def test_split_is_stable_and_disjoint(built):
    out, _ = built
    for r in all_rows(out):
        assert r["split"] == corpus.split_of(r["text"])
    assert corpus.split_of("床前明月光，疑是地上霜。") == corpus.split_of("床前明月光，疑是地上霜。")
    buckets = [corpus.split_of(f"测试{i}") for i in range(3000)]
    assert 0.96 < buckets.count("train") / 3000 < 0.995


def test_dataset_loads_with_hf_datasets(built):
    from datasets import load_dataset

    out, _ = built
    ds = load_dataset("parquet", data_files={"train": str(out / "train.parquet")})["train"]
    assert set(ds.column_names) >= {"title", "author", "form", "cipai", "text", "text_trad", "popularity", "split"}


def test_tokenizer_roundtrip_and_control_tokens(built):
    from transformers import AutoTokenizer

    out, manifest = built
    tok = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    assert manifest["vocab_size"] == len(tok)
    s = header("五绝", title="静夜思") + "床前明月光，疑是地上霜。<eos>"
    ids = tok(s, add_special_tokens=False)["input_ids"]
    toks = tok.convert_ids_to_tokens(ids)
    assert toks[:3] == ["<bos>", "<五绝>", "<题>"]
    assert toks[-1] == "<eos>" and "床" in toks
    assert tok.unk_token_id not in ids[3:]  # every char of a training poem is known
    assert tok.decode(ids) == s
    assert tok.convert_tokens_to_ids("龘") == tok.unk_token_id


def test_one_form_per_character(built):
    """The fixture's 登高 and 早發白帝城 write 猨 (猿) and 桮 (杯): the training text and so the tokenizer
    have only the standard forms; the traditional text keeps what the source wrote."""
    from transformers import AutoTokenizer

    from core.variants import is_standard, normalise

    out, _ = built
    rows = all_rows(out)
    assert all(normalise(r["text"]) == r["text"] for r in rows)
    dg = next(r for r in rows if r["title"] == "登高")
    assert "猿" in dg["text"] and "杯" in dg["text"] and "猨" in dg["text_trad"]
    tok = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    chars = [t for t in tok.get_vocab() if len(t) == 1 and "\u3400" <= t <= "\u9fff"]
    assert chars and all(is_standard(c) for c in chars)
    assert "猨" not in tok.get_vocab() and "猿" in tok.get_vocab()


def test_rerun_is_noop(built, mini_tarball):
    out, _ = built
    assert is_up_to_date(out, integrity_of(mini_tarball))
    assert not is_up_to_date(out, "sha512-other")
    before = (out / MANIFEST).stat().st_mtime_ns
    assert (out / MANIFEST).stat().st_mtime_ns == before


def test_corrupt_tarball_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tarball at all")
    out = tmp_path / "dataset"
    with pytest.raises(PrepareError, match="not a readable"):
        build(bad, out, "sha512-x")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dataset")]


def test_wrong_tarball_rejected_by_integrity(mini_tarball):
    with pytest.raises(SourceError, match="published integrity"):
        local_tarball(mini_tarball)


def test_cli_errors_are_one_line(tmp_path, mini_tarball):
    env = {**os.environ, "SHIREN_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    r = subprocess.run([sys.executable, "-m", "core.cli", "data", "prepare", "--from-tarball", str(mini_tarball)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert "published integrity" in r.stderr and "Traceback" not in r.stderr
    env["SHIREN_HOME"] = str(tmp_path / "missing")
    r = subprocess.run([sys.executable, "-m", "core.cli", "data", "prepare", "--from-tarball", str(mini_tarball)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_clean_and_classify_units():
    assert clean_body(["春眠不觉晓，处处闻啼鸟。", "夜来风雨声，花落知多少。"]) is not None
    assert clean_body(["春眠不觉晓（一作春眠），处处闻啼鸟."]) == "春眠不觉晓，处处闻啼鸟。"
    assert clean_body(["abc，def。"]) is None
    assert classify("一二三四五，一二三四五。\n一二三四五，一二三四五。", False) == "五绝"
    assert classify("一二三四五六七，一二三四五。", False) == "古体"
    assert classify("任何", True) == "词"
    assert json.loads(json.dumps(header("词", cipai="浣溪沙"))).startswith("<bos><词><牌>浣溪沙")
