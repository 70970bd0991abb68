"""Pretraining loop for the base poetry GPT (a thin script over training.model, nanoGPT-style).

Resumable: every `ckpt_minutes` the full state goes atomically to `<out>/ckpt`; rerunning the same
command continues from it with the same data order, so the loss curve has no jump. Where the data dir
was lost (a new machine), `init_from` (a committed bf16 snapshot, `shiren train snapshot`) restarts at
the snapshot's step with a fresh optimizer and a short LR re-warm-up, recorded in `resumes`.
Multi-GPU runs use `torchrun --nproc_per_node N` with no code change (DDP; gloo on CPU, nccl on CUDA).

Speed knobs (docs/training.md has what each bought on the 2-core AMX CPU): bf16 autocast where the
hardware has bf16 matmuls, `torch.compile` of model + loss on fixed shapes, fused AdamW, micro-batches
with gradient accumulation (a GPU takes the whole batch at once; the same `batch_size`, so the same
optimisation and the same artefact on either device).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.cpu_share import cpu_flags
from training import checkpoint
from training.model import GPTConfig, build_model, n_params
from training.schedule import rewarm, warmup_cosine

# Micro-batch on CPU when `micro_batch` is 0: measured tokens/s is flat from 16 to 64 sequences of 256
# on 2 cores (docs/training.md), so the whole batch goes at once unless it is larger than this.
CPU_MICRO_BATCH = 32
# Config fields that describe the machine, not the run: they may differ when a run moves machines.
MACHINE_FIELDS = ("out_dir", "dataset_dir", "device", "compile", "micro_batch", "num_threads", "optimizer",
                  "ckpt_minutes", "init_from", "resumes", "bf16", "adaptive_threads")
# With adaptive threads, how often the free cores are re-read (a change recompiles the step once per
# thread count: torch.compile guards on it; both variants stay cached).
ADAPTIVE_INTERVAL_S = 10.0


def free_cores(max_threads: int):
    """The thread count a CPU training loop follows with adaptive threads (core.cpu_share)."""
    from core.cpu_share import FreeCores

    return FreeCores(max_threads=max_threads, interval_s=ADAPTIVE_INTERVAL_S)


def follow_free_cores(cores) -> int | None:
    """Before a step: set torch's threads to the cores free now; the new count when it changed."""
    if cores is None or (n := cores.threads()) == torch.get_num_threads():
        return None
    torch.set_num_threads(n)
    return n


@dataclass
class WeightsResume:
    """A restart from committed weights (no optimizer state): where, from which step, how it re-warmed."""

    source: str
    step: int
    rewarm_steps: int
    at: str  # UTC time of the restart


@dataclass
class TrainConfig:
    out_dir: str
    dataset_dir: str
    model: GPTConfig = field(default_factory=GPTConfig)
    batch_size: int = 32  # sequences per optimizer step, over all ranks and micro-batches
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    max_steps: int = 0  # 0: derive from `epochs` of the train split
    epochs: float = 1.0
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_blocks: int = 128
    ckpt_minutes: float = 5.0
    seed: int = 1337
    bf16: bool | None = None  # None: bf16 autocast where the device has fast bf16 matmuls (AMX, AVX512-BF16, CUDA)
    optimizer: str = "auto"  # AdamW kernel: "fused" | "foreach" | "auto" (fused)
    compile: str = "auto"  # "on" | "off" | "auto": torch.compile where a compiler backend is present
    micro_batch: int = 0  # sequences per forward; 0: whole batch on CUDA, CPU_MICRO_BATCH on CPU
    num_threads: int = 0  # intra-op threads on CPU; 0: the cores this process may use
    # Follow the cores other processes leave free (core.cpu_share), up to num_threads: on this 2-core
    # machine two threads are ~1.8x one when it is quiet and ~3x slower when another job holds a core.
    adaptive_threads: bool = False
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    init_from: str = ""  # weights dir to restart from when OUT/ckpt is missing (fresh optimizer)
    rewarm_steps: int = 100  # LR re-warm-up after a restart from weights (Adam's moments start at zero)
    resumes: list[WeightsResume] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["model"] = GPTConfig(**d["model"])
        d["resumes"] = [WeightsResume(**r) for r in d.get("resumes", [])]
        return cls(**d)

    def run_identity(self) -> dict:
        """The config without machine-specific fields: two runs with equal identities are the same run."""
        return {k: v for k, v in asdict(self).items() if k not in MACHINE_FIELDS}


def pick_device(pref: str = "auto") -> torch.device:
    if pref not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {pref!r}; use auto, cpu or cuda")
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    if pref != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def resolve_bf16(pref: bool | None, device: torch.device) -> bool:
    """bf16 autocast only where it is fast: without AMX/AVX512-BF16 the CPU emulates bf16 matmuls and
    is slower than fp32."""
    if pref is not None:
        return pref
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def resolve_compile(pref: str, device: torch.device) -> bool:
    """torch.compile needs Triton on CUDA and a C++ compiler on CPU (inductor); without them, eager."""
    if pref not in ("auto", "on", "off"):
        raise ValueError(f"unknown compile setting {pref!r}; use auto, on or off")
    if pref != "auto":
        return pref == "on"
    if device.type == "cuda":
        import importlib.util

        return importlib.util.find_spec("triton") is not None
    return any(shutil.which(c) for c in ("c++", "g++", "clang++"))


def resolve_micro_batch(cfg: TrainConfig, device: torch.device, world: int) -> int:
    """Sequences per forward on this rank; must divide the per-rank batch (gradient accumulation)."""
    per_rank, rem = divmod(cfg.batch_size, world)
    if rem:
        raise ValueError(f"batch {cfg.batch_size} does not split over {world} ranks")
    micro = cfg.micro_batch or (per_rank if device.type == "cuda" else min(per_rank, CPU_MICRO_BATCH))
    if per_rank % micro:
        raise ValueError(f"micro-batch {micro} does not divide the per-rank batch {per_rank}")
    return micro


def set_threads(n: int) -> int:
    """Intra-op threads = usable cores (the affinity mask, not the host's count); one inter-op thread,
    since a training step is one chain of ops and extra inter-op threads only compete for the cores."""
    n = n or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
    with contextlib.suppress(RuntimeError):  # settable only before the first parallel op
        torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The run's schedule, times a linear re-warm-up after the latest restart from weights."""
    mult = warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio)
    if cfg.resumes:
        mult *= rewarm(step, cfg.resumes[-1].step, cfg.resumes[-1].rewarm_steps)
    return mult


def adamw_impl(name: str) -> dict:
    if name == "auto":
        name = "fused"
    if name == "fused":
        return {"fused": True}
    if name == "foreach":
        return {"foreach": True}
    raise ValueError(f"unknown optimizer implementation {name!r}; use fused, foreach or auto")


def make_optimizer(model, cfg: TrainConfig, device: torch.device, start_step: int = 0):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
        **adamw_impl(cfg.optimizer),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, cfg))
    if start_step:  # a restart from weights: the schedule continues at the snapshot's step
        sched.last_epoch = start_step - 1
        with warnings.catch_warnings():  # LambdaLR warns about step() before optimizer.step()
            warnings.simplefilter("ignore")
            sched.step()
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


class LossModule(torch.nn.Module):
    """model + cross-entropy as one module, so `torch.compile` fuses the loss (log-softmax over the
    7.6k vocab is ~15% of an eager step) with the model's casts and norms into one graph."""

    def __init__(self, model, device: torch.device, bf16: bool):
        super().__init__()
        self.model, self.device, self.bf16 = model, device, bf16

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return batch_loss(self.model, batch, self.device, self.bf16)


@torch.no_grad()
def evaluate(model, blocks: np.ndarray, device: torch.device, bf16: bool, batch_size: int = 32) -> float:
    model.eval()
    losses = []
    for i in range(0, len(blocks), batch_size):
        b = torch.from_numpy(blocks[i : i + batch_size].astype(np.int64)).to(device)
        losses.append(batch_loss(model, b, device, bf16).item() * len(b))
    model.train()
    return sum(losses) / len(blocks)


def default_snapshot_dir() -> Path:
    """Where `shiren train snapshot` commits the mid-run weights: models/base-snapshot in the repo."""
    from core import paths

    return paths.shipped_models_dir() / "base-snapshot"


def resolve_init_from(cfg: TrainConfig) -> Path | None:
    """The weights to restart from when OUT/ckpt is missing: an explicit dir; or with "auto" the
    committed snapshot, but only when it was made by this very run (same config bar machine fields),
    so a new run never silently starts from another run's weights."""
    if not cfg.init_from or cfg.init_from == "none":
        return None
    if cfg.init_from != "auto":
        return Path(cfg.init_from)
    snap = default_snapshot_dir()
    if not (snap / "model.safetensors").exists():
        return None
    try:
        _, info = checkpoint.load_weights_info(snap)
    except checkpoint.CheckpointError:
        return None
    saved = TrainConfig.from_dict(info["train_config"])
    return snap if saved.run_identity() == cfg.run_identity() else None


class Trainer:
    """Holds model, optimizer and data for one run; `step()` does one update."""

    def __init__(self, cfg: TrainConfig, tokenizer, train_stream: np.ndarray, valid_stream: np.ndarray):
        from training.data import BlockSampler

        self.cfg = cfg
        self.rank, self.world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        self.device = pick_device(cfg.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.bf16 = resolve_bf16(cfg.bf16, self.device)
        self.micro = resolve_micro_batch(cfg, self.device, self.world)
        self.out = Path(cfg.out_dir)
        self.ckpt_dir = self.out / "ckpt"
        self.sampler = BlockSampler(train_stream, cfg.model.block_size, cfg.batch_size // self.world, cfg.seed,
                                    self.rank, self.world)
        if cfg.max_steps <= 0:
            cfg.max_steps = max(1, int(self.sampler.per_epoch * cfg.epochs))
        vb = cfg.model.block_size + 1
        n_valid = min(cfg.eval_blocks, len(valid_stream) // vb)
        self.valid_blocks = valid_stream[: n_valid * vb].reshape(n_valid, vb)
        self.tokens_per_step = cfg.batch_size * cfg.model.block_size
        self.step_no = 0
        self.resumed_from_weights = False
        if (self.ckpt_dir / checkpoint.STATE_FILE).exists():
            model, state, saved = checkpoint.load(self.ckpt_dir, self.device)
            if saved["model"] != asdict(cfg.model):
                raise checkpoint.CheckpointError(
                    f"{self.ckpt_dir} holds a different model ({saved['model']}); use another --out or delete it"
                )
            cfg.max_steps = saved["max_steps"]  # the schedule of the run being resumed
            cfg.resumes = [WeightsResume(**r) for r in saved.get("resumes", [])]  # keeps its re-warm-up
            self.model = model
            self.opt, self.sched = make_optimizer(self.model, cfg, self.device)
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(state["cuda_rng"])
            self.step_no = int(state["step"])
        elif (src := resolve_init_from(cfg)) is not None:
            self._init_from_weights(src)
        else:
            torch.manual_seed(cfg.seed)
            cfg.model.vocab_size = len(tokenizer)
            self.model = build_model(cfg.model).to(self.device)
            self.opt, self.sched = make_optimizer(self.model, cfg, self.device)
        self.ddp_model = self.model
        if self.world > 1:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(self.model)
        self.compiled = resolve_compile(cfg.compile, self.device)
        loss_module = LossModule(self.ddp_model, self.device, self.bf16)
        # Fixed shapes (every micro-batch is micro × block+1), so one graph serves the whole run.
        self.loss_fn = torch.compile(loss_module, dynamic=False) if self.compiled else loss_module

    def _init_from_weights(self, src: Path) -> None:
        """Restart from committed weights: same model and schedule, fresh optimizer, short re-warm-up."""
        from datetime import UTC, datetime

        model, info = checkpoint.load_weights(src)
        cfg = self.cfg
        snap_model = asdict(GPTConfig(**info["train_config"]["model"]))
        if snap_model != asdict(cfg.model):
            raise checkpoint.CheckpointError(f"{src} holds a different model ({snap_model}); pass matching size flags")
        step = int(info["step"])
        if step >= cfg.max_steps:
            raise checkpoint.CheckpointError(f"{src} is at step {step}, past this run's {cfg.max_steps} steps")
        cfg.resumes = [WeightsResume(**r) for r in info["train_config"].get("resumes", [])]
        cfg.resumes.append(WeightsResume(source=str(src), step=step, rewarm_steps=max(1, cfg.rewarm_steps),
                                         at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
        torch.manual_seed(cfg.seed + step)
        self.model = model.to(self.device)
        self.opt, self.sched = make_optimizer(self.model, cfg, self.device, start_step=step)
        self.step_no = step
        self.resumed_from_weights = True

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def step(self) -> float:
        """One optimizer step over `batch_size` sequences, in micro-batches (gradients accumulate)."""
        full = torch.from_numpy(self.sampler.batch(self.step_no))
        n_micro = len(full) // self.micro
        self.opt.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i in range(n_micro):
            b = full[i * self.micro : (i + 1) * self.micro].to(self.device, non_blocking=True)
            # DDP all-reduces on the last micro-batch only.
            sync = i == n_micro - 1 or self.world == 1
            ctx = contextlib.nullcontext() if sync else self.ddp_model.no_sync()
            with ctx:
                loss = self.loss_fn(b) / n_micro
                loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step_no += 1
        return total.item()

    def save(self) -> None:
        if self.is_main:
            checkpoint.save(self.ckpt_dir, self.model, self.opt, self.sched, self.step_no, asdict(self.cfg))

    def valid_loss(self) -> float:
        return evaluate(self.model, self.valid_blocks, self.device, self.bf16)


def log_metrics(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def train(cfg: TrainConfig, tokenizer, train_stream: np.ndarray, valid_stream: np.ndarray, *,
          stop_after_steps: int | None = None, progress: bool = True) -> Trainer:
    """Run (or resume) to cfg.max_steps; `stop_after_steps` ends early (tests, time-boxed comparisons)."""
    from tqdm import tqdm

    threads = set_threads(cfg.num_threads)
    tr = Trainer(cfg, tokenizer, train_stream, valid_stream)
    tr.out.mkdir(parents=True, exist_ok=True)
    metrics = tr.out / "metrics.jsonl"
    runtime = {"device": str(tr.device), "bf16": tr.bf16, "compile": tr.compiled, "micro_batch": tr.micro,
               "threads": threads, "world": tr.world}
    if tr.is_main and (tr.step_no == 0 or tr.resumed_from_weights):
        # A fresh log: a new run, or a restart from weights on a machine that lost the old log.
        metrics.unlink(missing_ok=True)
        start = {"event": "start", "params": n_params(tr.model), "config": asdict(cfg), "runtime": runtime,
                 "epoch_tokens": tr.sampler.n_blocks * cfg.model.block_size, "time": time.time()}
        if tr.resumed_from_weights:
            start["resumed_from_weights"] = asdict(cfg.resumes[-1])
        log_metrics(metrics, start)
    elif tr.is_main:
        log_metrics(metrics, {"event": "resume", "from_step": tr.step_no, "runtime": runtime, "time": time.time()})
    end = cfg.max_steps if stop_after_steps is None else min(cfg.max_steps, tr.step_no + stop_after_steps)
    bar = tqdm(total=cfg.max_steps, initial=tr.step_no, disable=not (progress and tr.is_main), unit="step",
               dynamic_ncols=True, mininterval=2.0)
    last_ckpt = time.time()
    t0, tokens0, start_step = time.time(), 0, tr.step_no
    cores = free_cores(threads) if cfg.adaptive_threads and tr.device.type == "cpu" else None
    while tr.step_no < end:
        if (n := follow_free_cores(cores)) and tr.is_main:
            log_metrics(metrics, {"event": "threads", "threads": n, "at_step": tr.step_no, "time": time.time()})
        loss = tr.step()
        if tr.step_no == start_step + 1:  # the first step pays for compilation: time the rest
            t0, tokens0 = time.time(), 0
            if tr.is_main:
                log_metrics(metrics, {"event": "first_step", "seconds": round(time.time() - last_ckpt, 2)})
        else:
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
