"""Pretraining on fixtures: loss falls, kill → resume continues exactly, bad checkpoints, DDP on CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from core.testing import tiny_model_and_tokenizer
from training.checkpoint import CheckpointError
from training.data import encode_stream, pretrain_texts
from training.model import GPTConfig
from training.pretrain import TrainConfig, Trainer, train

ROWS = [
    {"form": "五绝", "title": "静夜思", "cipai": "", "text": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"},
    {"form": "七绝", "title": "早发白帝城", "cipai": "",
     "text": "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。"},
    {"form": "五绝", "title": "登鹳雀楼", "cipai": "", "text": "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。"},
    {"form": "词", "title": "如梦令", "cipai": "如梦令",
     "text": "常记溪亭日暮，沉醉不知归路。\n兴尽晚回舟，误入藕花深处。\n争渡，争渡，惊起一滩鸥鹭。"},
]


@pytest.fixture(scope="module")
def streams():
    _, tok = tiny_model_and_tokenizer(n_chars=3000)
    train = encode_stream(pretrain_texts(ROWS * 40, seed=0), tok)
    valid = encode_stream(pretrain_texts(ROWS * 4, seed=1), tok)
    return tok, train, valid


def cfg_for(out: Path, tok, **kw) -> TrainConfig:
    mc = GPTConfig(arch="llama", vocab_size=len(tok), block_size=32, n_layer=1, n_head=2, n_embd=32)
    base = dict(out_dir=str(out), dataset_dir=str(out), model=mc, batch_size=4, lr=3e-3, warmup_steps=2,
                max_steps=12, eval_interval=6, eval_blocks=8, ckpt_minutes=1e9, bf16=False)
    base.update(kw)
    return TrainConfig(**base)


def losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in rows if "step" in r}


def test_tiny_training_loss_falls(tmp_path, streams):
    tok, train_s, valid_s = streams
    cfg = cfg_for(tmp_path / "run", tok, max_steps=40, lr=1e-2)
    tr = Trainer(cfg, tok, train_s, valid_s)
    before = tr.valid_loss()
    tr = train(cfg, tok, train_s, valid_s, progress=False)
    assert tr.valid_loss() < before - 1.0
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    assert {"model.safetensors", "trainer_state.pt", "config.json"} <= {p.name for p in (tmp_path / "run" / "ckpt").iterdir()}


def test_kill_and_resume_continues_exactly(tmp_path, streams):
    tok, train_s, valid_s = streams
    full = tmp_path / "full"
    train(cfg_for(full, tok), tok, train_s, valid_s, progress=False)
    part = tmp_path / "part"
    train(cfg_for(part, tok), tok, train_s, valid_s, stop_after_steps=5, progress=False)  # "killed" after 5
    assert max(losses(part)) == 5
    train(cfg_for(part, tok), tok, train_s, valid_s, progress=False)  # the same command again resumes
    a, b = losses(full), losses(part)
    assert sorted(b) == list(range(1, 13))
    for step in range(6, 13):
        assert b[step] == pytest.approx(a[step], abs=1e-4), step


def test_bad_checkpoints_get_clear_errors(tmp_path, streams):
    tok, train_s, valid_s = streams
    run = tmp_path / "run"
    train(cfg_for(run, tok, max_steps=2), tok, train_s, valid_s, progress=False)
    (run / "ckpt" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        Trainer(cfg_for(run, tok, max_steps=4), tok, train_s, valid_s)
    other = tmp_path / "other"
    train(cfg_for(other, tok, max_steps=2), tok, train_s, valid_s, progress=False)
    bigger = cfg_for(other, tok, max_steps=4)
    bigger.model.n_embd = 64
    with pytest.raises(CheckpointError, match="different model"):
        Trainer(bigger, tok, train_s, valid_s)
    (other / "ckpt" / "trainer_state.pt").unlink()
    (other / "ckpt" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not a Shiren checkpoint"):
        from training import checkpoint

        checkpoint.load(other / "ckpt", __import__("torch").device("cpu"))


def test_ddp_two_cpu_processes(tmp_path, streams):
    """The same training code under DDP (gloo) with 2 processes: both ranks step, rank 0 checkpoints."""
    tok, train_s, valid_s = streams
    np.save(tmp_path / "train.npy", train_s)
    np.save(tmp_path / "valid.npy", valid_s)
    tok.save_pretrained(str(tmp_path / "tok"))
    cfg = cfg_for(tmp_path / "run", tok, max_steps=3)
    (tmp_path / "cfg.json").write_text(json.dumps(asdict(cfg)))
    script = (
        "import json, sys, numpy as np, torch; from pathlib import Path\n"
        "from transformers import AutoTokenizer; from training.pretrain import TrainConfig, train\n"
        "d = Path(sys.argv[1]); tok = AutoTokenizer.from_pretrained(str(d / 'tok'))\n"
        "cfg = TrainConfig.from_dict(json.loads((d / 'cfg.json').read_text()))\n"
        "tr = train(cfg, tok, np.load(d / 'train.npy'), np.load(d / 'valid.npy'), progress=False)\n"
        "print('RANK', torch.distributed.get_rank(), tr.step_no, tr.sampler.rank)\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert "RANK 0 3 0" in outs[0][0] and "RANK 1 3 1" in outs[1][0]
    assert (tmp_path / "run" / "ckpt" / "model.safetensors").exists()
    assert max(losses(tmp_path / "run")) == 3
