"""The decoding sweep: every setting on the same requests, its settings reach the poet, the table."""

from __future__ import annotations

from core.testing import tiny_poet
from training.decode_sweep import Setting, best, detectability, grid, poems_file, run_sweep, to_markdown
from training.two_sample import NgramLM, normalize_body

TEXT5 = "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
TEXT7 = "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。"
ROWS = [{"id": f"{form}{i}", "form": form, "title": f"题{i}", "cipai": "", "text": t}
        for form, t in (("五绝", TEXT5), ("七绝", TEXT7)) for i in range(5)]


def test_grid_is_every_pair():
    assert grid([0.7, 0.9], [0.9, 0.95]) == [Setting(0.7, 0.9), Setting(0.7, 0.95), Setting(0.9, 0.9),
                                              Setting(0.9, 0.95)]


def test_sweep_scores_each_setting_on_the_same_requests():
    lm = NgramLM().fit([normalize_body(r["text"]) for r in ROWS])
    settings = [Setting(0.3, 0.95), Setting(1.5, 0.95)]
    rows = run_sweep(tiny_poet(), ROWS, settings, per_form=5, seed=0, lm=lm, progress=False)
    assert [(r["temperature"], r["top_p"]) for r in rows] == [(0.3, 0.95), (1.5, 0.95)]
    for r in rows:
        assert r["served"] == r["requests"] == 10
        assert 0.0 <= r["auc_ci"][0] <= r["auc"] <= r["auc_ci"][1] <= 1.0
        assert r["lm_gap_ci"][0] <= r["lm_gap"] <= r["lm_gap_ci"][1]
    # the temperature reaches the poet: the same requests and seeds give other poems
    assert [p["text"] for p in rows[0]["generated"]] != [p["text"] for p in rows[1]["generated"]]
    assert [p["group"] for p in rows[0]["generated"]] == [p["group"] for p in rows[1]["generated"]]
    assert all(p["request"]["temperature"] == 1.5 for p in rows[1]["generated"])
    md = to_markdown(rows, "tiny")
    assert md.count("\n| 0.3 | 0.95 | 10 |") == 1 and "| 1.5 | 0.95 | 10 |" in md and md.count("**←**") == 1


def test_best_is_the_setting_the_better_detector_finds_hardest():
    # too random is as telling as too bland: an LM-alone AUC of 0.1 detects like 0.9
    rows = [{"auc": 0.77, "lm_auc": 0.68, "lm_gap": 0.3}, {"auc": 0.65, "lm_auc": 0.34, "lm_gap": -0.3},
            {"auc": 0.58, "lm_auc": 0.09, "lm_gap": -1.0}]
    assert [round(detectability(r), 2) for r in rows] == [0.77, 0.66, 0.91]
    assert best(rows) is rows[1]
    tie = [{"auc": 0.7, "lm_auc": 0.6, "lm_gap": 0.4}, {"auc": 0.7, "lm_auc": 0.45, "lm_gap": -0.1}]
    assert best(tie) is tie[1]


def test_a_contrast_axis_reaches_the_poet():
    import torch

    from core.testing import tiny_model_and_tokenizer
    from core.weights import LoadedWeights
    from training.model import GPTConfig, build_model

    expert, tok = tiny_model_and_tokenizer(seed=0)
    torch.manual_seed(7)
    am = build_model(GPTConfig(arch="llama", vocab_size=len(tok), block_size=256, n_layer=1, n_head=2, n_embd=16))
    from core.poet import Poet

    poet = Poet(expert, tok, version="tiny-0",
                amateur=LoadedWeights(am.config.to_dict(), dict(am.eval().state_dict()), torch.float32))
    settings = grid([0.8], [0.95], [None, 1.0])
    assert settings == [Setting(0.8, 0.95), Setting(0.8, 0.95, 1.0)]
    rows = run_sweep(poet, ROWS, settings, per_form=5, seed=0, lm=None, progress=False)
    assert [r["beta"] for r in rows] == [None, 1.0]
    assert [p["text"] for p in rows[0]["generated"]] != [p["text"] for p in rows[1]["generated"]]
    md = to_markdown(rows, "tiny")
    assert "| contrast β |" in md and "\n| – | 0.8 | 0.95 | 10 |" in md and "\n| 1 | 0.8 | 0.95 | 10 |" in md
    assert poems_file(rows[1]) == "generated-T0.8-p0.95-cd1.jsonl" and poems_file(rows[0]) == "generated-T0.8-p0.95.jsonl"
