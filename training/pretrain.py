"""Pretraining loop for the base poetry GPT (a thin script over training.model, nanoGPT-style).

Resumable: every `ckpt_minutes` the full state goes atomically to `<out>/ckpt`; rerunning the same
command continues from it with the same data order, so the loss curve has no jump. Multi-GPU runs
use `torchrun --nproc_per_node N` with no code change (DDP; gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training import checkpoint
from training.model import GPTConfig, build_model, n_params


@dataclass
class TrainConfig:
    out_dir: str
    dataset_dir: str
    model: GPTConfig = field(default_factory=GPTConfig)
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    max_steps: int = 0  # 0: one epoch of the train split
    epochs: float = 1.0
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_blocks: int = 128
    ckpt_minutes: float = 5.0
    seed: int = 1337
    bf16: bool = True

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["model"] = GPTConfig(**d["model"])
        return cls(**d)


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine decay to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def lr_at(step: int, cfg: TrainConfig) -> float:
    return warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)


def make_optimizer(model, cfg: TrainConfig, device: torch.device):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        fused=device.type == "cuda",
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    return opt, sched


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def batch_loss(model, batch: torch.Tensor, device: torch.device, bf16: bool) -> torch.Tensor:
    x, y = batch[:, :-1], batch[:, 1:]  # (B, T) inputs, (B, T) next-token targets
    with autocast(device, bf16):
        logits = model(input_ids=x).logits  # (B, T, V)
    pad = getattr(model, "module", model).config.pad_token_id  # DDP wraps the model in .module
    y = y.masked_fill(y == pad, -100)  # packed streams carry no padding, but mask it anyway
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)


@torch.no_grad()
def evaluate(model, blocks: np.ndarray, device: torch.device, bf16: bool, batch_size: int = 32) -> float:
    model.eval()
    losses = []
    for i in range(0, len(blocks), batch_size):
        b = torch.from_numpy(blocks[i : i + batch_size].astype(np.int64)).to(device)
        losses.append(batch_loss(model, b, device, bf16).item() * len(b))
    model.train()
    return sum(losses) / len(blocks)


class Trainer:
    """Holds model, optimizer and data for one run; `step()` does one update."""

    def __init__(self, cfg: TrainConfig, tokenizer, train_stream: np.ndarray, valid_stream: np.ndarray):
        from training.data import BlockSampler

        self.cfg = cfg
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.device = pick_device()
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.out = Path(cfg.out_dir)
        self.ckpt_dir = self.out / "ckpt"
        self.sampler = BlockSampler(train_stream, cfg.model.block_size, cfg.batch_size, cfg.seed, self.rank, self.world)
        if cfg.max_steps <= 0:
            cfg.max_steps = max(1, int(self.sampler.per_epoch * cfg.epochs))
        vb = cfg.model.block_size + 1
        n_valid = min(cfg.eval_blocks, len(valid_stream) // vb)
        self.valid_blocks = valid_stream[: n_valid * vb].reshape(n_valid, vb)
        self.tokens_per_step = cfg.batch_size * cfg.model.block_size * self.world
        self.step_no = 0
        if (self.ckpt_dir / checkpoint.STATE_FILE).exists():
            model, state, saved = checkpoint.load(self.ckpt_dir, self.device)
            if saved["model"] != asdict(cfg.model):
                raise checkpoint.CheckpointError(
                    f"{self.ckpt_dir} holds a different model ({saved['model']}); use another --out or delete it"
                )
            cfg.max_steps = saved["max_steps"]  # the schedule of the run being resumed
            self.model = model
            self.opt, self.sched = make_optimizer(self.model, cfg, self.device)
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            self.step_no = int(state["step"])
        else:
            torch.manual_seed(cfg.seed)
            cfg.model.vocab_size = len(tokenizer)
            self.model = build_model(cfg.model).to(self.device)
            self.opt, self.sched = make_optimizer(self.model, cfg, self.device)
        self.ddp_model = self.model
        if self.world > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def step(self) -> float:
        b = torch.from_numpy(self.sampler.batch(self.step_no)).to(self.device)
        loss = batch_loss(self.ddp_model, b, self.device, self.cfg.bf16)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step_no += 1
        return loss.item()

    def save(self) -> None:
        if self.is_main:
            checkpoint.save(self.ckpt_dir, self.model, self.opt, self.sched, self.step_no, asdict(self.cfg))

    def valid_loss(self) -> float:
        return evaluate(self.model, self.valid_blocks, self.device, self.cfg.bf16)


def log_metrics(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def train(cfg: TrainConfig, tokenizer, train_stream: np.ndarray, valid_stream: np.ndarray, *,
          stop_after_steps: int | None = None, progress: bool = True) -> Trainer:
    """Run (or resume) to cfg.max_steps; `stop_after_steps` ends early (tests, time-boxed comparisons)."""
    from tqdm import tqdm

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tr = Trainer(cfg, tokenizer, train_stream, valid_stream)
    tr.out.mkdir(parents=True, exist_ok=True)
    metrics = tr.out / "metrics.jsonl"
    if tr.is_main and tr.step_no == 0:
        metrics.unlink(missing_ok=True)
        log_metrics(metrics, {"event": "start", "params": n_params(tr.model), "config": asdict(cfg)})
    end = cfg.max_steps if stop_after_steps is None else min(cfg.max_steps, tr.step_no + stop_after_steps)
    bar = tqdm(total=cfg.max_steps, initial=tr.step_no, disable=not (progress and tr.is_main), unit="step",
               dynamic_ncols=True, mininterval=2.0)
    last_ckpt = time.time()
    t0, tokens0 = time.time(), 0
    while tr.step_no < end:
        loss = tr.step()
        tokens0 += tr.tokens_per_step
        tok_s = tokens0 / max(1e-9, time.time() - t0)
        row = {"step": tr.step_no, "tokens": tr.step_no * tr.tokens_per_step, "train_loss": round(loss, 4),
               "lr": tr.sched.get_last_lr()[0], "tok_s": round(tok_s), "time": time.time()}
        if tr.step_no % cfg.eval_interval == 0 or tr.step_no == cfg.max_steps:
            row["valid_loss"] = round(tr.valid_loss(), 4)
        if tr.is_main:
            log_metrics(metrics, row)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tok_s:,.0f}", refresh=False)
        bar.update(1)
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60 or tr.step_no == end:
            tr.save()
            last_ckpt = time.time()
    bar.close()
    if tr.is_main:
        from training.plots import plot_losses

        plot_losses(metrics, tr.out / "loss.png")
    return tr
