"""The critic's masked-LM pretraining: loss falls, a stopped run resumes exactly, the checkpoint loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from core.critic.critic import Critic
from core.critic.model import CriticConfig
from core.testing import tiny_model_and_tokenizer
from training.critic_mlm import MLMConfig, draw_batch, length_buckets, train_mlm

ROWS = [
    {"id": "a", "form": "五绝", "title": "静夜思", "cipai": "", "text": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"},
    {"id": "b", "form": "七绝", "title": "早发白帝城", "cipai": "",
     "text": "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。"},
    {"id": "c", "form": "五绝", "title": "登鹳雀楼", "cipai": "", "text": "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。"},
    {"id": "d", "form": "词", "title": "如梦令", "cipai": "如梦令",
     "text": "常记溪亭日暮，沉醉不知归路。\n兴尽晚回舟，误入藕花深处。\n争渡，争渡，惊起一滩鸥鹭。"},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ds")
    for split, rows in (("train", ROWS * 20), ("valid", ROWS)):
        pq.write_table(pa.Table.from_pylist(rows), d / f"{split}.parquet")
    _, tok = tiny_model_and_tokenizer()
    (d / "tokenizer").mkdir()
    tok.save_pretrained(str(d / "tokenizer"))
    return d


def cfg(out: Path, ds: Path) -> MLMConfig:
    return MLMConfig(out_dir=str(out), dataset_dir=str(ds), model=CriticConfig(vocab_size=0, n_layer=1, n_embd=32, n_head=2),
                     batch_size=8, lr=3e-3, warmup_steps=2, max_steps=12, eval_interval=6, ckpt_minutes=1e9)


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in rows if "step" in r}


def test_loss_falls_and_resume_is_exact(dataset, tmp_path):
    whole = train_mlm(cfg(tmp_path / "whole", dataset), log=lambda s: None)
    full = losses(tmp_path / "whole")
    assert full[12] < full[1]
    assert 0 <= whole.card.metrics["mlm_valid_acc"] <= 1 and whole.card.metrics["mlm_steps"] == 12
    train_mlm(cfg(tmp_path / "split", dataset), stop_after_steps=5, log=lambda s: None)
    assert max(losses(tmp_path / "split")) == 5
    again = train_mlm(cfg(tmp_path / "split", dataset), log=lambda s: None)
    assert losses(tmp_path / "split") == pytest.approx(full, abs=1e-4)
    texts = [r["text"] for r in ROWS]
    assert again.score(texts, [r["form"] for r in ROWS]).tolist() == pytest.approx(
        whole.score(texts, [r["form"] for r in ROWS]).tolist(), abs=1e-4)
    assert Critic.load(tmp_path / "split" / "ckpt").card.model.n_embd == 32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the critic's training on the GPU is "
                                                          "tested on a GPU machine (scripts/gpu_check.sh)")
def test_trains_on_cuda_and_loads_on_the_cpu(dataset, tmp_path):
    """The same schedule on the GPU (batches and masks drawn on the CPU, so the same ones); its loss falls,
    the checkpoint loads on the CPU, and its start record names the device. Losses agree with the CPU's
    only to float tolerance (other summation orders), so they are not compared."""
    c = cfg(tmp_path / "gpu", dataset)
    c.device = "cuda"
    crit = train_mlm(c, log=lambda s: None)
    full = losses(tmp_path / "gpu")
    assert full[12] < full[1] and crit.device.type == "cpu"
    start = json.loads((tmp_path / "gpu" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["device"].startswith("cuda")


def test_length_buckets_cover_every_poem_and_batches_stay_within_one():
    seqs = [np.zeros(n, dtype=np.int32) for n in [22, 30, 160, 24, 64, 22, 100, 30, 48, 26]]
    buckets = length_buckets(seqs, 3)
    assert sorted(np.concatenate(buckets).tolist()) == list(range(len(seqs)))
    spans = [(min(len(seqs[i]) for i in b), max(len(seqs[i]) for i in b)) for b in buckets]
    assert all(hi <= lo2 for (_, hi), (lo2, _) in zip(spans, spans[1:], strict=False))  # consecutive lengths
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = draw_batch(buckets, 5, rng)
        assert any(set(idx.tolist()) <= set(b.tolist()) for b in buckets)


def test_mask_rate_sets_how_many_characters_are_predicted(dataset):
    import pandas as pd

    from core.critic.critic import CharVocab, char_mask
    from training.critic_mlm import encode_split, mask_batch, pad

    vocab = CharVocab(json.loads((dataset / "tokenizer" / "tokenizer.json").read_text("utf-8")))
    rows = pd.read_parquet(dataset / "train.parquet").to_dict("records")
    ids = pad(encode_split(vocab, rows, 160), vocab.pad)
    content = char_mask(vocab)
    n_chars = int((content[ids]).sum())
    share = {r: int((mask_batch(ids, vocab, vocab.size, content, np.random.default_rng(1), r)[1] != -100).sum()) / n_chars
             for r in (0.15, 0.4)}
    assert share[0.15] == pytest.approx(0.15, abs=0.03) and share[0.4] == pytest.approx(0.4, abs=0.04)


def test_bucketed_run_trains_and_records_its_recipe(dataset, tmp_path):
    c = cfg(tmp_path / "b", dataset)
    c.length_buckets, c.mask_rate = 2, 0.3
    crit = train_mlm(c, log=lambda s: None)
    full = losses(tmp_path / "b")
    assert full[12] < full[1]
    assert crit.card.metrics["mlm_mask_rate"] == 0.3


def test_restart_from_committed_weights_continues_the_step_count(dataset, tmp_path):
    """A new machine without the run dir: --init-from takes a saved critic's weights and step, a fresh
    optimizer re-warms, and the run goes on to the end of its schedule; a critic of another shape is refused."""
    first = cfg(tmp_path / "first", dataset)
    first.max_steps = first.eval_interval = 6
    done = train_mlm(first, log=lambda s: None)
    assert done.card.metrics["mlm_steps"] == 6
    later = cfg(tmp_path / "new-machine", dataset)
    later.init_from, later.rewarm_steps = str(tmp_path / "first" / "ckpt"), 3
    log: list[str] = []
    crit = train_mlm(later, log=log.append)
    assert any("restarting from the weights" in m and "step 6" in m for m in log)
    steps = losses(tmp_path / "new-machine")
    assert min(steps) == 7 and max(steps) == 12 and crit.card.metrics["mlm_steps"] == 12
    assert steps[7] < losses(tmp_path / "first")[1]  # it starts from what the first run learned
    other = cfg(tmp_path / "other", dataset)
    other.model = CriticConfig(vocab_size=0, n_layer=2, n_embd=32, n_head=2)
    other.init_from = str(tmp_path / "first" / "ckpt")
    with pytest.raises(ValueError, match="another critic"):
        train_mlm(other, log=lambda s: None)
