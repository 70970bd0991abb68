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
import torch

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
                max_steps=12, eval_interval=6, eval_blocks=8, ckpt_minutes=1e9, bf16=False, compile="off")
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


# --- speed knobs, device selection, restart from weights, the sweep report ---------------------------


def test_micro_batches_accumulate_to_the_same_step(tmp_path, streams):
    """Gradient accumulation over micro-batches is the same optimisation as the whole batch at once
    (so a GPU taking the whole batch and a CPU taking micro-batches train the same model)."""
    tok, train_s, valid_s = streams
    whole = tmp_path / "whole"
    train(cfg_for(whole, tok, max_steps=4), tok, train_s, valid_s, progress=False)
    micro = tmp_path / "micro"
    train(cfg_for(micro, tok, max_steps=4, micro_batch=2), tok, train_s, valid_s, progress=False)
    a, b = losses(whole), losses(micro)
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-4), step
    with pytest.raises(ValueError, match="does not divide"):
        Trainer(cfg_for(tmp_path / "bad", tok, micro_batch=3), tok, train_s, valid_s)


def test_compiled_step_matches_eager_and_never_recompiles(tmp_path, streams):
    import torch._dynamo

    tok, train_s, valid_s = streams
    eager = tmp_path / "eager"
    train(cfg_for(eager, tok, max_steps=5), tok, train_s, valid_s, progress=False)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    comp = tmp_path / "comp"
    tr = train(cfg_for(comp, tok, max_steps=5, compile="on"), tok, train_s, valid_s, progress=False)
    assert tr.compiled
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert 1 <= graphs <= 2  # one graph for the loss module (a graph break would add one), not one per step
    a, b = losses(eager), losses(comp)
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-3), step
    rows = [json.loads(x) for x in (comp / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["runtime"]["compile"] is True
    assert any(r.get("event") == "first_step" for r in rows)


def test_device_selection_without_a_gpu(monkeypatch):
    """The CUDA path's choices, tested by pretending CUDA is there (nothing in the path assumes CPU)."""
    import torch

    from training import pretrain as P

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setenv("LOCAL_RANK", "1")
    dev = P.pick_device("auto")
    assert dev == torch.device("cuda", 1)
    assert P.pick_device("cpu") == torch.device("cpu")
    assert P.resolve_bf16(None, dev) is True
    assert P.resolve_bf16(False, dev) is False
    cfg = TrainConfig(out_dir="", dataset_dir="", batch_size=256)
    assert P.resolve_micro_batch(cfg, dev, world=2) == 128  # a GPU takes its whole share at once
    assert P.resolve_micro_batch(cfg, torch.device("cpu"), world=1) == P.CPU_MICRO_BATCH
    assert P.resolve_compile("off", dev) is False and P.resolve_compile("on", dev) is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA"):
        P.pick_device("cuda")
    assert P.pick_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError):
        P.pick_device("tpu")
    # bf16 on CPU only where the CPU has bf16 matmuls (AMX / AVX512-BF16); plain AVX2 stays fp32.
    cpu = torch.device("cpu")
    monkeypatch.setattr(P, "cpu_flags", lambda: {"avx2", "fma"})
    assert P.resolve_bf16(None, cpu) is False
    monkeypatch.setattr(P, "cpu_flags", lambda: {"avx2", "amx_bf16", "amx_tile"})
    assert P.resolve_bf16(None, cpu) is True
    monkeypatch.setattr(P.shutil, "which", lambda name: None)
    assert P.resolve_compile("auto", cpu) is False  # no C++ compiler: inductor cannot build, run eager


def test_restart_from_weights_on_a_new_machine(tmp_path, streams, monkeypatch):
    """Data dir lost: the committed snapshot (bf16 weights + config, no optimizer) restarts the run at
    its step with a fresh optimizer and a re-warm-up; the loss continues and the metadata says so."""
    from safetensors import safe_open

    from training import checkpoint
    from training import pretrain as P
    from training.export import export_base, export_snapshot

    tok, train_s, valid_s = streams
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(str(tok_dir))
    full = tmp_path / "full"
    train(cfg_for(full, tok, max_steps=30, lr=1e-2, warmup_steps=3), tok, train_s, valid_s, progress=False)
    run = tmp_path / "old-machine"
    train(cfg_for(run, tok, max_steps=30, lr=1e-2, warmup_steps=3), tok, train_s, valid_s,
          stop_after_steps=20, progress=False)
    snap = tmp_path / "base-snapshot"
    info = export_snapshot(run / "ckpt", tok_dir, snap)
    assert info["step"] == 20
    assert not (snap / checkpoint.STATE_FILE).exists()  # weights only
    with safe_open(str(snap / "model.safetensors"), "pt") as f:
        assert json.loads(f.metadata()[checkpoint.META_TRAIN_CONFIG])["max_steps"] == 30
        assert f.get_tensor(next(iter(f.keys()))).dtype.is_floating_point
    new = tmp_path / "new-machine"  # the old run dir is gone; only the committed snapshot is left
    cfg = cfg_for(new, tok, max_steps=30, lr=1e-2, warmup_steps=3, init_from=str(snap), rewarm_steps=4)
    tr = train(cfg, tok, train_s, valid_s, progress=False)
    assert tr.step_no == 30
    rows = [json.loads(x) for x in (new / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["event"] == "start" and rows[0]["resumed_from_weights"]["step"] == 20
    steps = {r["step"]: r for r in rows if "step" in r}
    assert min(steps) == 21
    # The LR re-warms from the snapshot's step: 1/4, 2/4, … of the schedule's value there.
    assert steps[21]["lr"] < steps[24]["lr"]
    a, b = losses(full), losses(new)
    assert b[21] < a[1] - 1.0  # it continues from trained weights, not from scratch
    assert abs(b[30] - a[30]) < 0.5
    # Exact resume afterwards keeps the record; the export (and so the model card) carries it.
    saved = json.loads((new / "ckpt" / checkpoint.CONFIG_FILE).read_text())
    assert saved["resumes"][0]["step"] == 20 and saved["resumes"][0]["source"] == str(snap)
    out = export_base(new / "ckpt", tok_dir, tmp_path / "exported")
    assert out["train_config"]["resumes"][0]["rewarm_steps"] == 4
    from training.model_card import write_base_card

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.json").write_text(json.dumps({"poems": {"train": 160}, "chars": {"train": 4000},
                                                  "vocab_min_freq": 10}))
    write_base_card(new, tmp_path / "exported", ds, n_samples=1, compare=None, sweep=None)
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "| restart | at step 20 from committed weights" in card and "4-step LR re-warm-up" in card
    logged = [json.loads(line) for line in (new / "metrics.jsonl").read_text().splitlines()]
    tokens = [r["tokens"] for r in logged if "tokens" in r][-1]
    assert tokens == 30 * 4 * 32  # 30 steps × batch 4 × 32
    assert f"| compute | {6 * logged[0]['params'] * tokens:.1e} FLOPs" in card
    # "auto": the snapshot is taken only when this same run made it.
    monkeypatch.setattr(P, "default_snapshot_dir", lambda: snap)
    same = cfg_for(tmp_path / "x", tok, max_steps=30, lr=1e-2, warmup_steps=3, init_from="auto")
    assert P.resolve_init_from(same) == snap
    other = cfg_for(tmp_path / "y", tok, max_steps=30, lr=5e-3, warmup_steps=3, init_from="auto")
    assert P.resolve_init_from(other) is None
    wrong = cfg_for(tmp_path / "z", tok, max_steps=30, init_from=str(snap))
    wrong.model.n_embd = 64
    with pytest.raises(CheckpointError, match="different model"):
        Trainer(wrong, tok, train_s, valid_s)


def test_sweep_report_from_synthetic_logs(tmp_path):
    """The sweep script on tiny synthetic run logs: table, plot, and a fit that recovers the law."""
    from training import sweep

    E, A, B = 1.8, 120.0, 60.0
    runs = []
    for n_layer, n_embd, n, rate in [(4, 256, 5e6, 9000), (6, 384, 13e6, 5000), (8, 512, 30e6, 2500)]:
        run = tmp_path / f"sweep-{n_layer}x{n_embd}"
        run.mkdir()
        tokens = [int(2e6 * k / 4) for k in range(1, 5)]
        lines = [{"event": "start", "params": int(n), "epoch_tokens": 23_000_000,
                  "config": {"lr": 1e-3, "model": {"n_layer": n_layer, "n_embd": n_embd}}},
                 {"event": "first_step", "seconds": 3.0}]
        for i, t in enumerate(tokens):
            loss = E + A / n**sweep.ALPHA + B / t**sweep.BETA
            lines.append({"step": i + 1, "tokens": t, "train_loss": loss, "tok_s": rate, "time": 100.0 + i * 60,
                          "valid_loss": loss})
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
        runs.append(run)
    png, md = tmp_path / "sweep.png", tmp_path / "sweep.md"
    text = sweep.report(runs, png, md, include_shipped=False)
    assert png.stat().st_size > 5000 and md.read_text() == text
    assert "sweep-6x384" in text and "predicted valid loss" in text and "**←**" in text
    pts = [sweep.read_run(r) for r in runs]
    f = sweep.fit([(p.params, p.tokens, p.valid_loss) for p in pts]
                  + [(5e6, 1e7, E + A / 5e6**sweep.ALPHA + B / 1e7**sweep.BETA)])
    assert f.E == pytest.approx(E, abs=1e-3) and f.rmse < 1e-6
    assert sweep.effective_tokens(1e6, 2e6) == 1e6  # under one epoch: all fresh
    assert 2e6 * 5 > sweep.effective_tokens(2e6 * 5, 2e6) > 2e6 * 4.4  # five epochs ≈ 4.5 fresh ones
    assert sweep.params_of(4, 256) == 5_172_224  # the shipped model's count
    from typer.testing import CliRunner

    from training.cli import app

    res = CliRunner().invoke(app, ["sweep", *map(str, runs), "--png", str(tmp_path / "c.png"),
                                   "--md", str(tmp_path / "c.md")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c.png").exists() and "shipped" in (tmp_path / "c.md").read_text()


def test_adaptive_threads_follow_the_free_cores(tmp_path, streams, monkeypatch):
    """--adaptive-threads: before each step the thread count follows core.cpu_share (faked here: another
    job takes a core at step 4 and leaves at step 8); each change is logged; the losses do not depend
    on it beyond float reassociation; the setting may change between resumes (a machine field)."""
    import core.cpu_share as cs
    import training.pretrain as pt

    tok, train_s, valid_s = streams
    plan = iter([2] * 4 + [1] * 4 + [2] * 100)

    class Fake:
        def __init__(self, max_threads, interval_s):
            assert interval_s == pt.ADAPTIVE_INTERVAL_S
            self.max_threads = max_threads

        def threads(self):
            return min(self.max_threads, next(plan))

    monkeypatch.setattr(cs, "FreeCores", Fake)
    monkeypatch.setattr(pt, "set_threads", lambda n: 2)
    before = torch.get_num_threads()
    try:
        out = tmp_path / "adaptive"
        train(cfg_for(out, tok, adaptive_threads=True), tok, train_s, valid_s, progress=False)
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    changes = [(r["at_step"], r["threads"]) for r in rows if r.get("event") == "threads"]
    assert changes[-2:] == [(4, 1), (8, 2)]
    ref = tmp_path / "ref"
    train(cfg_for(ref, tok), tok, train_s, valid_s, progress=False)
    a, b = losses(ref), losses(out)
    assert all(b[s] == pytest.approx(a[s], abs=1e-4) for s in a)
    assert "adaptive_threads" in pt.MACHINE_FIELDS


def test_card_curve_counts_a_step_evaluated_twice_once():
    """A step logged, then killed before its checkpoint, then run again on resume: one row, the last."""
    from training.model_card import valid_curve

    rows = [{"step": 1000, "tokens": 10, "valid_loss": 4.0}, {"step": 1250, "tokens": 12, "valid_loss": 3.9},
            {"step": 1250, "tokens": 12, "valid_loss": 3.8}, {"step": 1300, "tokens": 13, "train_loss": 3.7}]
    assert valid_curve(rows) == [(1000, 10, 4.0), (1250, 12, 3.8)]
