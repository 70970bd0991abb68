"""The release's old-vs-new eval table from two `shiren eval --out` results."""

from __future__ import annotations

import json

from training.eval_compare import main, to_markdown


def result(version: str, loss: float, auc: float, with_two_sample: bool = True) -> dict:
    res = {"model_version": version,
           "heldout": {"valid (pretraining format)": {"base": {"nats_per_token": loss, "tokens": 9, "poems": 1}},
                       "valid (instruction format)": {"base": {"nats_per_token": loss + 0.2},
                                                      "adapter": {"nats_per_token": loss - 0.3}}},
           "systems": {"shiren": {"overall": {"format": 1.0, "rhyme": 1.0, "tone_relaxed": 1.0, "copied": 0.01,
                                              "acrostic": None}}}}
    if with_two_sample:
        res["two_sample"] = {"classifiers": {"ngram": {"auc": auc, "auc_ci": [auc - 0.05, auc + 0.05],
                                                       "accuracy": 0.6, "accuracy_ci": [0.55, 0.65]}},
                             "likelihood": {"char trigram LM (train split)": {"gap": 0.34, "gap_ci": [0.2, 0.4],
                                                                              "auc": 0.68, "auc_ci": [0.6, 0.7]}}}
    return res


def test_table_sets_old_beside_new_and_leaves_missing_rows_blank():
    md = to_markdown(result("base-a+sft-v1", 4.46, 0.806), result("base-b+sft-v2", 3.70, 0.70, with_two_sample=False))
    lines = md.splitlines()
    assert lines[0] == "| measure | old: base-a+sft-v1 | new: base-b+sft-v2 |"
    assert "| held-out loss, valid, pretraining format, base (nats/token) | 4.460 | 3.700 |" in lines
    assert "| held-out loss, valid, instruction format, adapter (nats/token) | 4.160 | 3.400 |" in lines
    assert "| copied lines | 0.010 | 0.010 |" in lines
    assert "| two-sample ROC-AUC, ngram | 0.806 [0.756, 0.856] |  |" in lines
    assert "| LM gap, generated − real (nats/char) | +0.340 [+0.200, +0.400] |  |" in lines
    assert not any("acrostic" in ln for ln in lines)  # a measure neither result has is not a row


def test_cli_writes_the_table_and_refuses_unreadable_input(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(result("o", 4.4, 0.8)), "utf-8")
    new.write_text(json.dumps(result("n", 3.7, 0.7)), "utf-8")
    assert main(["--old", str(old), "--new", str(new), "--out", str(tmp_path / "t.md")]) == 0
    assert "| two-sample ROC-AUC, ngram | 0.800 [0.750, 0.850] | 0.700 [0.650, 0.750] |" in (tmp_path / "t.md").read_text()
    (tmp_path / "bad.json").write_text("{", "utf-8")
    assert main(["--old", str(tmp_path / "bad.json"), "--new", str(new)]) == 2
    assert "cannot read an eval result" in capsys.readouterr().err
