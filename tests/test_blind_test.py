"""The blind reading: the sheet hides titles, sources and the key; filled sheets are scored;
malformed ones are rejected with a clear message."""

from __future__ import annotations

import json

import pytest
from blind_support import fill

from training.blind_test import SheetError, build_sheet, main, parse_sheet, results_markdown, score_sheets

GEN = [
    {"text": "春风吹柳绿，细雨润花红。\n独坐听莺语，闲看燕入空。", "form": "五绝", "cipai": "", "group": "r1",
     "model_version": "tiny"},
    {"text": "江上秋风起，天涯客未归。\n孤舟明月夜，思绪向谁飞。", "form": "五绝", "cipai": "", "group": "r2"},
    {"text": "万里长江日夜流，青山无数送行舟。\n英雄去后空陈迹，唯有白云自在游。", "form": "七绝", "cipai": "", "group": "r3"},
]
POOL = [
    {"id": "r1", "title": "春晓", "text": "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。", "form": "五绝", "cipai": ""},
    {"id": "r4", "title": "静夜思", "text": "床前明月光，疑是地上霜！\n举头望明月，低头思故乡？", "form": "五绝", "cipai": ""},
    {"id": "r5", "title": "登鹳雀楼", "text": "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。", "form": "五绝", "cipai": ""},
    {"id": "r6", "title": "早发白帝城", "text": "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。",
     "form": "七绝", "cipai": ""},
]


def test_sheet_hides_titles_sources_and_key():
    sheet, key = build_sheet(GEN, POOL, n=3, seed=1)
    assert len(key["items"]) == 6 and sorted(i["source"] for i in key["items"]) == ["generated"] * 3 + ["real"] * 3
    for word in ("春晓", "静夜思", "登鹳雀楼", "早发白帝城", "generated", "real", "tiny", "r1", "r4"):
        assert word not in sheet
    assert "！" not in sheet and "？" not in sheet  # the writer's punctuation is not a tell
    assert "春眠不觉晓" not in sheet  # the real poem a generated one was asked to match is never used
    assert f"sheet: {key['sheet_id']}" in sheet
    for it in key["items"]:
        assert f"## {it['no']}\n\n{it['body']}\n" in sheet
    real_forms = sorted(i["form"] for i in key["items"] if i["source"] == "real")
    assert real_forms == sorted(g["form"] for g in GEN)
    assert build_sheet(GEN, POOL, n=3, seed=1) == (sheet, key)  # reproducible
    assert build_sheet(GEN, POOL, n=3, seed=2)[1]["items"] != key["items"]


def test_scoring_a_filled_sheet():
    sheet, key = build_sheet(GEN, POOL, n=3, seed=1)
    src = {i["no"]: i["source"] for i in key["items"]}
    perfect = lambda no: ({"fluency": 4, "coherence": "4/5", "meaning": 5, "guess": "human", "confidence": 4}  # noqa: E731
                          if src[no] == "real" else
                          {"fluency": 2, "coherence": 1, "meaning": 2, "guess": "Machine", "confidence": "５"})
    coin = lambda no: {"fluency": 3, "coherence": 3, "meaning": 3, "guess": "machine" if no % 2 else "human",  # noqa: E731
                       "confidence": 1}
    sheets = {"a": parse_sheet(fill(sheet, perfect), 6, key["sheet_id"]),
              "b": parse_sheet(fill(sheet, coin), 6, key["sheet_id"])}
    res = score_sheets(key, {"a": sheets["a"]}, n_boot=100)
    assert res["guess"]["auc"][0] == 1.0 and res["guess"]["accuracy"][0] == 1.0
    assert res["scores"]["real"]["fluency"][0] == 4 and res["scores"]["generated"]["coherence"][0] == 1
    both = score_sheets(key, sheets, n_boot=100)
    assert both["per_reader"]["a"]["auc"][0] == 1.0 and 0 <= both["per_reader"]["b"]["auc"][0] <= 1
    assert both["scores"]["real"]["meaning"][0] == pytest.approx(4.0)


def test_forgiving_layout():
    sheet, key = build_sheet(GEN, POOL, n=3, seed=1)
    filled = fill(sheet, lambda no: {"fluency": "4 (natural)", "coherence": "3", "meaning": "3分", "guess": "人",
                                     "confidence": "80%"})
    filled = filled.replace("## ", "### Poem ").replace("- fluency:", "* **Fluency**:").replace("- guess:", "- Guess：")
    parsed = parse_sheet(filled, 6, key["sheet_id"])
    a = parsed["answers"][1]
    assert a == {"fluency": 4.0, "coherence": 3.0, "meaning": 3.0, "guess": "human", "confidence": pytest.approx(3.4)}


def test_malformed_sheets_are_rejected():
    sheet, key = build_sheet(GEN, POOL, n=3, seed=1)
    ok = lambda no: {"fluency": 3, "coherence": 3, "meaning": 3, "guess": "human", "confidence": 2}  # noqa: E731
    blank2 = fill(sheet, lambda no: ok(no) if no != 2 else dict.fromkeys(ok(no), ""))
    with pytest.raises(SheetError, match="poem 2: no answer for fluency, coherence, meaning, guess, confidence"):
        parse_sheet(blank2, 6, key["sheet_id"])
    bad = fill(sheet, lambda no: {**ok(no), "fluency": 7 if no == 3 else 3, "guess": "maybe" if no == 4 else "human"})
    with pytest.raises(SheetError) as e:
        parse_sheet(bad, 6, key["sheet_id"], name="reader.md")
    msg = str(e.value)
    assert "reader.md" in msg and "poem 3 fluency must be a number 1–5, got '7'" in msg
    assert "poem 4 guess must be 'human' or 'machine', got 'maybe'" in msg
    with pytest.raises(SheetError, match="poems missing: 5–6"):
        parse_sheet(fill(sheet, ok).split("## 5")[0], 6, key["sheet_id"])
    with pytest.raises(SheetError, match="appears twice"):
        parse_sheet(fill(sheet, ok).replace("## 2\n", "## 1\n"), 6, key["sheet_id"])
    with pytest.raises(SheetError, match="key is for sheet"):
        parse_sheet(fill(sheet, ok).replace(key["sheet_id"], "deadbeef"), 6, key["sheet_id"])


def test_cli_build_and_score(tmp_path, capsys):
    g, r = tmp_path / "g.jsonl", tmp_path / "r.jsonl"
    g.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in GEN), "utf-8")
    r.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in POOL[1:]), "utf-8")
    assert main(["build", "--generated", str(g), "--real", str(r), "--n", "3", "--seed", "3", "--out", str(tmp_path)]) == 0
    key_path = next(tmp_path.glob("key-*.json"))
    sheet = next(tmp_path.glob("sheet-*.md")).read_text("utf-8")
    key = json.loads(key_path.read_text("utf-8"))
    src = {i["no"]: i["source"] for i in key["items"]}
    filled = tmp_path / "reader1.md"
    filled.write_text(fill(sheet, lambda no: {"fluency": 3, "coherence": 3, "meaning": 3, "confidence": 3,
                                              "guess": "machine" if src[no] == "generated" else "human"}), "utf-8")
    capsys.readouterr()
    assert main(["score", "--key", str(key_path), "--sheets", str(filled), "--out", str(tmp_path / "res.md")]) == 0
    assert "| all readers | 1.000" in capsys.readouterr().out
    broken = tmp_path / "broken.md"
    broken.write_text(sheet, "utf-8")  # nothing filled in
    assert main(["score", "--key", str(key_path), "--sheets", str(broken)]) == 2
    assert "cannot score this sheet" in capsys.readouterr().err


def test_two_generated_arms_on_one_sheet(tmp_path, capsys):
    """Two sampling settings for the same requests: n of each on disjoint requests, one sheet with the
    real poems, scored per arm against the real ones."""
    hot = [{**p, "text": p["text"].replace("春", "夏").replace("江", "河").replace("万", "千")} for p in GEN]
    extra = [{"text": "山中无历日，寒尽不知年。\n松下闲敲子，灯前独看禅。", "form": "五绝", "cipai": "", "group": "r7"},
             {"text": "独上西楼望远山，秋风吹雨过江关。\n故园此去三千里，一夜归心到海湾。", "form": "七绝", "cipai": "",
              "group": "r9"}]
    arms = {"cold": GEN, "hot": hot + extra}
    pool = POOL + [{"id": "r8", "title": "鹿柴", "text": "空山不见人，但闻人语响。\n返景入深林，复照青苔上。",
                    "form": "五绝", "cipai": ""}]
    sheet, key = build_sheet(arms, pool, n=2, seed=4)
    assert key["arms"] == ["cold", "hot"] and len(key["items"]) == 6
    with pytest.raises(ValueError, match="same forms"):  # an arm with only 五绝 left cannot face a mixed one
        build_sheet({"cold": GEN, "hot": hot + extra[:1]}, pool, n=2, seed=4)
    assert sorted(i.get("arm", "-") for i in key["items"]) == ["-", "-", "cold", "cold", "hot", "hot"]
    refs = [i["ref"] for i in key["items"] if i["source"] == "generated"]
    assert len(set(refs)) == 4  # no request answered twice on one sheet
    assert not {i["ref"] for i in key["items"] if i["source"] == "real"} & set(refs)
    for word in ("cold", "hot"):
        assert word not in sheet
    arm = {i["no"]: i.get("arm") for i in key["items"]}
    answers = lambda no: {"fluency": 4 if arm[no] != "hot" else 1, "coherence": 3, "meaning": 3,  # noqa: E731
                          "guess": "machine" if arm[no] == "hot" else "human", "confidence": 3}
    res = score_sheets(key, {"a": parse_sheet(fill(sheet, answers), 6, key["sheet_id"])}, n_boot=100)
    assert res["arms"]["hot"]["auc"][0] == 1.0 and res["arms"]["cold"]["auc"][0] == 0.5
    assert res["arms"]["hot"]["scores"]["fluency"][0] == 1 and res["arms"]["cold"]["scores"]["fluency"][0] == 4
    assert res["arms"]["hot"]["said_machine"] == 1.0 and res["arms"]["cold"]["n"] == 2
    assert "| hot | 2 | 1.00 [1.00, 1.00] |" in results_markdown(res)
    # the later arm against the first: hot read 1 where cold read 4, on every poem, so no resample differs
    assert res["arm_baseline"] == "cold" and res["arm_diffs"]["hot"]["fluency"] == (-3.0, -3.0, -3.0)
    assert res["arm_diffs"]["hot"]["coherence"] == (0.0, 0.0, 0.0)
    assert "| hot − cold | -3.00 [-3.00, -3.00] | +0.00 [+0.00, +0.00] |" in results_markdown(res)
    # the command line: ARM=PATH, names must differ
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, poems in ((a, GEN), (b, hot + extra)):
        path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in poems), "utf-8")
    r = tmp_path / "r.jsonl"
    r.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pool[1:]), "utf-8")
    assert main(["build", "--generated", f"cold={a}", f"hot={b}", "--real", str(r), "--n", "2",
                 "--out", str(tmp_path / "s")]) == 0
    assert json.loads(next((tmp_path / "s").glob("key-*.json")).read_text("utf-8"))["arms"] == ["cold", "hot"]
    assert main(["build", "--generated", f"x={a}", f"x={b}", "--real", str(r), "--n", "2",
                 "--out", str(tmp_path / "t")]) == 2
    assert "its own name" in capsys.readouterr().err


def test_temperature_plot_reads_the_arms_and_draws(tmp_path):
    """Arms named t<temperature> become points at that temperature (other arms are left out); the sweep
    rows add the n-gram AUC; the figure is written."""
    from training.temperature_plot import main as plot_main
    from training.temperature_plot import sheet_points, sweep_points

    cold = [{**p, "text": p["text"].replace("春", "冬")} for p in GEN]
    extra = [{"text": "山中无历日，寒尽不知年。\n松下闲敲子，灯前独看禅。", "form": "五绝", "cipai": "", "group": "r7"},
             {"text": "独上西楼望远山，秋风吹雨过江关。\n故园此去三千里，一夜归心到海湾。", "form": "七绝", "cipai": "",
              "group": "r9"}]
    pool = POOL + [{"id": "r8", "title": "鹿柴", "text": "空山不见人，但闻人语响。\n返景入深林，复照青苔上。",
                    "form": "五绝", "cipai": ""}]
    sheet, key = build_sheet({"t0.6": GEN, "t0.9": cold + extra}, pool, n=2, seed=4)
    arm = {i["no"]: i.get("arm") for i in key["items"]}
    flu = {"t0.6": 3, "t0.9": 2, None: 5}
    answers = lambda no: {"fluency": flu[arm[no]], "coherence": 3, "meaning": 2,  # noqa: E731
                          "guess": "human" if arm[no] is None else "machine", "confidence": 3}
    (tmp_path / f"key-{key['sheet_id']}.json").write_text(json.dumps(key, ensure_ascii=False), "utf-8")
    (tmp_path / f"filled-{key['sheet_id']}-a.md").write_text(fill(sheet, answers), "utf-8")
    pts = sheet_points(tmp_path, key["sheet_id"])
    assert [(t, m) for t, m, _, _ in pts["fluency"]] == [(0.6, 3.0), (0.9, 2.0)]
    assert pts["real"][0][1] == 5.0  # real poems' fluency, the sheet's reference line
    rows = [{"temperature": 0.9, "top_p": 0.95, "auc": 0.6, "auc_ci": [0.5, 0.7]},
            {"temperature": 0.9, "top_p": 1.0, "auc": 0.1, "auc_ci": [0.0, 0.2]},
            {"temperature": 0.6, "top_p": 0.95, "auc": 0.8, "auc_ci": [0.7, 0.9]}]
    sweep = tmp_path / "sweep.json"
    sweep.write_text(json.dumps(rows), "utf-8")
    assert sweep_points([sweep]) == [(0.6, 0.8, 0.7, 0.9), (0.9, 0.6, 0.5, 0.7)]  # top-p 0.95 only
    png = tmp_path / "t.png"
    assert plot_main(["--sheets", key["sheet_id"], "--blind-dir", str(tmp_path), "--sweeps", str(sweep),
                      "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
