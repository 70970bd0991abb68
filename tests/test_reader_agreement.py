"""Reader agreement: filled sheets parsed into per-poem reader means, stratified rank correlations with
bootstrap intervals, the readers' ceiling, the leave-one-sheet-out combination, and the model signals
(pinned to the poet's own likelihood on a tiny model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from blind_support import fill

from training.blind_test import build_sheet
from training.reader_agreement import (
    analyse,
    centred_ranks,
    compute_signals,
    fill_requests,
    find_readings,
    main,
    model_signals,
    poem_table,
    rankdata,
    reader_scores,
    request_kind,
    slim,
    strata_of,
    stratified_spearman,
    surface_signals,
    to_markdown,
)

BODIES = ["春风吹柳绿，细雨润花红。", "江上秋风起，天涯客未归。", "孤舟明月夜，思绪向谁飞。", "山中无甲子，寒尽不知年。",
          "落日照高楼，长河入海流。", "白云生远岫，黄叶下空林。", "独坐幽篁里，弹琴复长啸。", "夜静春山空，月出惊山鸟。"]


def _poems(tag: str) -> tuple[list[dict], list[dict]]:
    gen = [{"text": b, "form": "五绝", "cipai": "", "group": f"{tag}g{i}"} for i, b in enumerate(BODIES[:4])]
    real = [{"text": b, "form": "五绝", "cipai": "", "id": f"{tag}r{i}", "title": f"题{i}"} for i, b in enumerate(BODIES[4:])]
    return gen, real


QUALITY = {b: q for q, b in enumerate(BODIES)}  # a hidden quality per poem: readers and the good signal follow it


def _write_blind(tmp_path, seeds=(1, 2)) -> None:
    for seed in seeds:
        gen, real = _poems(f"s{seed}")
        sheet, key = build_sheet(gen, real, n=4, seed=seed, real_is_pool=False)
        body = {it["no"]: it["body"].replace("\n", "") for it in key["items"]}
        src = {it["no"]: it["source"] for it in key["items"]}
        (tmp_path / f"sheet-{key['sheet_id']}.md").write_text(sheet, "utf-8")
        (tmp_path / f"key-{key['sheet_id']}.json").write_text(json.dumps(key, ensure_ascii=False), "utf-8")
        for reader, noise in (("r1", 0), ("r2", 1)):
            def ans(no, noise=noise, body=body, src=src):
                q = QUALITY[body[no]]
                s = 1 + (q + noise * (no % 2)) % 5
                return {"fluency": s, "coherence": s, "meaning": 1 + q % 5,
                        "guess": "machine" if src[no] == "generated" else "human", "confidence": 1 + (q + noise) % 5}
            (tmp_path / f"filled-{key['sheet_id']}-{reader}.md").write_text(fill(sheet, ans), "utf-8")


def test_rank_helpers():
    assert rankdata(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert rankdata(np.array([[3.0, 1.0], [1.0, 1.0]])).tolist() == [[2.0, 1.0], [1.5, 1.5]]
    x, y = [1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5]
    r = np.corrcoef(rankdata(np.array(x, float)), rankdata(np.array(y, float)))[0, 1]
    assert stratified_spearman(x, y) == pytest.approx(r)
    strata = ["a", "a", "a", "b", "b", "b"]
    shifted = [v + (100 if s == "b" else 0) for v, s in zip(x, strata, strict=True)]
    assert stratified_spearman(shifted, y, strata) == pytest.approx(stratified_spearman(x, y, strata))
    # A sheet-level shift poses as a correlation when strata are ignored.
    assert stratified_spearman([1, 2, 3, 11, 12, 13], [3, 2, 1, 13, 12, 11]) > 0
    assert stratified_spearman([1, 2, 3, 11, 12, 13], [3, 2, 1, 13, 12, 11], strata) == pytest.approx(-1.0)
    assert math.isnan(stratified_spearman([1, 1, 1], [1, 2, 3]))
    # A stratum where the signal ties every poem is left out of the table's correlation, not of a prediction's.
    x2 = [1, 1, 1, 1, 2, 3]
    assert stratified_spearman(x2, x, strata) == pytest.approx(1.0)
    assert stratified_spearman(x2, x, strata, drop_constant=False) < 0.8
    assert centred_ranks([3, 1, 2, 9], ["a", "a", "a", "b"]).tolist() == pytest.approx([1 / 3, -1 / 3, 0, 0])


def test_reader_scores_average_readers():
    a = {"fluency": 4, "coherence": 2, "meaning": 3, "guess": "human", "confidence": 5}
    b = {"fluency": 2, "coherence": 2, "meaning": 1, "guess": "machine", "confidence": 3}
    s = reader_scores([a, b])
    assert s["fluency"] == 3 and s["coherence"] == 2 and s["meaning"] == 2
    assert s["overall"] == pytest.approx(14 / 6)
    assert s["humanness"] == 1.0 and s["p_human"] == 0.5


def test_parse_signals_and_analysis(tmp_path):
    _write_blind(tmp_path)
    (tmp_path / "key-ffffffff.json").write_text(json.dumps({"sheet_id": "ffffffff", "items": []}), "utf-8")  # unread
    readings = find_readings(tmp_path)
    assert len(readings) == 2 and all(sorted(r.sheets) == ["r1", "r2"] for r in readings.values())
    poems = poem_table(readings)
    assert len(poems) == 16 and sum(p["source"] == "generated" for p in poems) == 8
    p = poems[0]
    q = QUALITY[p["text"].replace("\n", "")]
    assert p["scores"]["meaning"] == 1 + q % 5
    assert p["scores"]["p_human"] == (1.0 if p["source"] == "real" else 0.0)

    def stub(ps):
        return {"good": [float(QUALITY[x["text"].replace("\n", "")] % 5) for x in ps],
                "bad": [-float(QUALITY[x["text"].replace("\n", "")] % 5) for x in ps],
                "flat": [1.0] * len(ps)}

    names = compute_signals(poems, [stub, surface_signals()])
    assert names == ["good", "bad", "flat", "n_chars", "distinct_chars"]
    res = analyse(poems, names, baseline="flat", n_boot=50, seed=0)
    gen = res["subsets"]["generated"]
    assert gen["n"] == 8 and gen["by"] == ["sheet", "form"]
    assert gen["rho"]["good"]["meaning"][0] == pytest.approx(1.0)
    assert gen["rho"]["bad"]["meaning"][0] == pytest.approx(-1.0)
    assert math.isnan(gen["rho"]["flat"]["meaning"][0]) and gen["n_used"]["flat"] == 0
    lo, hi = gen["rho"]["good"]["overall"][1:]
    assert lo <= gen["rho"]["good"]["overall"][0] <= hi
    assert gen["readers"]["k"] == 2 and gen["readers"]["rho"]["meaning"][0] == pytest.approx(1.0)
    assert gen["readers"]["ceiling"]["meaning"] == pytest.approx(1.0)
    c = res["combination"]
    assert set(c["folds"]) == set(readings)
    for sid, f in c["folds"].items():  # the training sheet picks the good signal (or −bad): held out, it is the good one
        assert f["single"] in ("good", "bad") and f["single_sign"] == (1.0 if f["single"] == "good" else -1.0)
        held = [p for p in poems if p["source"] == "generated" and p["sheet"] == sid]
        want = stratified_spearman([p["signals"]["good"] for p in held], [p["scores"]["overall"] for p in held],
                                   strata_of(held), drop_constant=False)
        assert f["single_rho"] == pytest.approx(want)
    assert res["same_request"] == {"n": 0}
    again = analyse(poems, names, baseline="flat", n_boot=50, seed=0)
    assert json.dumps(slim(again)) == json.dumps(slim(res))  # deterministic
    md = to_markdown(res)
    assert "| `good` |" in md and "reader vs reader" in md and "pooled held-out" in md


def test_surface_signals_with_lm_and_corpus_lines():
    from core.corpus_lines import CorpusLines
    from training.two_sample import NgramLM, normalize_body

    corpus = ["春风吹柳绿，细雨润花红。", "明月照松间，清泉石上流。"]
    lm = NgramLM().fit([normalize_body(t) for t in corpus])
    lines = CorpusLines.from_clauses(["春风吹柳绿", "清泉石上流"])
    poems = [{"text": "春风吹柳绿，清泉石上流。"}, {"text": "春风春风春，江湖江湖江。"}]
    s = surface_signals(lm, lines, top_k=3)(poems)
    assert s["copied_lines"] == [2, 0]
    assert s["novel_bigrams"][0] == 0.0 and s["novel_bigrams"][1] > 0.5
    assert s["distinct_chars"] == [1.0, 0.4] and s["n_chars"] == [10, 10]
    assert s["trigram_lp"][0] > s["trigram_lp"][1]
    assert all(len(v) == 2 for v in s.values())


def test_fill_requests_and_kinds():
    poems = [{"source": "generated", "ref": "a", "request": None}, {"source": "generated", "ref": "b", "request": {"title": "x"}},
             {"source": "generated", "ref": "c", "request": None}, {"source": "real", "ref": "a"}]
    reqs = {"a": {"acrostic": "春夏", "title": ""}, "b": {"title": "x"}}
    assert fill_requests(poems, reqs) == {"filled": 1, "agree": 1, "disagree": 0, "missing": 1}
    assert [request_kind(p) for p in poems] == ["acrostic", "title", "", "real"]


def test_model_signals_match_the_poets_own_likelihood():
    """`lp_request` scores a poem as the poet did when it chose it: the sampled characters only (not an
    acrostic's heads), under the request's prompt — so a plain poem's `lp_request` is its `Poem.logprob`
    and `poet_rank` its ranking score."""
    from core.poet import Poet, rank_score
    from core.testing import tiny_critic, tiny_model_and_tokenizer
    from core.types import PoemRequest

    model, tok = tiny_model_and_tokenizer(seed=3)
    poet = Poet(model, tok, conditioned=True)  # as with an adapter: the acrostic is in the prompt
    req = PoemRequest(form="五绝", acrostic="春江花月", seed=11)
    poem = poet.write(req)[0]
    poet.close()
    gen = {"source": "generated", "text": poem.text, "form": "五绝", "cipai": "", "request": req.to_dict()}
    real = {"source": "real", "text": "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。", "form": "五绝", "cipai": "",
            "title": "登鹳雀楼"}
    sig = model_signals(model, model, tok, tiny_critic(tok, seed=3))([gen, real])
    assert sig["lp_request"][0] == pytest.approx(poem.logprob, abs=1e-3)
    strict = bool(poem.scores.get("tone_strict"))
    assert sig["poet_rank"][0] == pytest.approx(rank_score(sig["lp_request"][0], 0, 0, strict))
    assert sig["lp_base"] == sig["lp_adapter"]  # the same model twice
    assert sig["critic_rank"][0] == pytest.approx(sig["poet_rank"][0] + sig["critic_human"][0], abs=1e-6)
    for name, v in sig.items():
        assert len(v) == 2 and all(math.isfinite(x) for x in v), name
    assert sig["mlm_min"][0] <= sig["mlm_worst3"][0] <= sig["mlm_pll"][0]
    assert sig["lp_request_min"][0] <= sig["lp_request_worst3"][0] <= sig["lp_request"][0]
    assert "cd_gain" not in sig  # no amateur given
    # with an amateur: the adapter's ln P over the amateur's on the same characters (the model against
    # itself gains nothing)
    with_am = model_signals(model, model, tok, amateur=model)([gen, real])
    assert with_am["lp_amateur"] == pytest.approx(with_am["lp_request"], abs=1e-6)
    assert with_am["cd_gain"] == pytest.approx([0.0, 0.0], abs=1e-6)


def test_command_line_without_models(tmp_path, capsys):
    _write_blind(tmp_path)
    out = tmp_path / "res.json"
    assert main(["--blind", str(tmp_path), "--no-models", "--no-lm", "--n-boot", "20", "--json", str(out)]) == 0
    res = json.loads(out.read_text("utf-8"))
    assert len(res["poems"]) == 16 and "n_chars" in res["signals"]
    assert "### generated poems" in capsys.readouterr().out
