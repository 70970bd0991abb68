"""`shiren eval` end to end on a tiny dataset and a tiny model: held-out loss and the two-sample test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from core.testing import tiny_model_and_tokenizer

WUJUE = ["床前明月光，疑是地上霜。\n举头望明月，低头思故乡。", "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。",
         "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。", "红豆生南国，春来发几枝。\n愿君多采撷，此物最相思。",
         "千山鸟飞绝，万径人踪灭。\n孤舟蓑笠翁，独钓寒江雪。", "空山不见人，但闻人语响。\n返景入深林，复照青苔上。"]
QIJUE = ["朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。",
         "黄河远上白云间，一片孤城万仞山。\n羌笛何须怨杨柳，春风不度玉门关。",
         "故人西辞黄鹤楼，烟花三月下扬州。\n孤帆远影碧空尽，唯见长江天际流。",
         "月落乌啼霜满天，江枫渔火对愁眠。\n姑苏城外寒山寺，夜半钟声到客船。",
         "秦时明月汉时关，万里长征人未还。\n但使龙城飞将在，不教胡马度阴山。",
         "日照香炉生紫烟，遥看瀑布挂前川。\n飞流直下三千尺，疑是银河落九天。"]


def test_eval_heldout_and_two_sample(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    model_dir = tmp_path / "model"
    model, tok = tiny_model_and_tokenizer()
    model.save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    ds = tmp_path / "home" / "dataset"
    ds.mkdir(parents=True)
    rows = [{"id": f"{form}{i}", "form": form, "title": f"诗{i}", "cipai": "", "text": t}
            for form, texts in (("五绝", WUJUE), ("七绝", QIJUE)) for i, t in enumerate(texts)]
    for split in ("train", "valid", "test"):
        pq.write_table(pa.Table.from_pylist(rows), ds / f"{split}.parquet")
    env = {**os.environ, "SHIREN_MODEL_DIR": str(model_dir), "SHIREN_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "core.cli", "eval", "--no-form", "--two-sample", "--two-sample-per-form",
                        "6", "--two-sample-dir", str(tmp_path / "ts"), "--threads", "1", "--json"],
                       capture_output=True, text=True, env=env, timeout=500)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    base = out["heldout"]["valid (pretraining format)"]["base"]
    assert base["poems"] == 12 and base["tokens"] == 6 * 25 + 6 * 33
    assert "adapter" not in out["heldout"]["valid (pretraining format)"]  # no adapter: the bare base model
    ts = out["two_sample"]
    assert ts["names"] == ["real", "generated"] and ts["n"][0] == ts["n"][1] >= 5
    for m in ts["classifiers"].values():
        assert 0 <= m["auc"] <= 1 and "probs" not in m
    assert set(ts["likelihood"]) == {"char trigram LM (train split)", "base model"}
    assert (tmp_path / "ts" / "generated.jsonl").exists() and (tmp_path / "ts" / "two_sample.md").exists()
