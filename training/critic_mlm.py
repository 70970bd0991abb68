"""Masked-LM pretraining of the critic (core.critic.model) on the train split, nanoGPT style.

Each poem is one sequence (<bos> <form> text <eos>). 15% of its characters are chosen (BERT's rule:
80% [MASK], 10% a random char, 10% kept) and predicted. Batches and masks depend only on (seed,
step), and every `ckpt_minutes` the full state goes atomically to `<out>/ckpt`, so rerunning the same
command resumes exactly where it stopped. `minutes` caps one session's wall time (the schedule keeps
its length: a later run continues it). It trains on CUDA when present (core.device: SHIREN_DEVICE=cpu
keeps it on the CPU); batches and masks are drawn on the CPU either way, so they are the same.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.critic.critic import BODY_OFFSET, CharVocab, Critic, CriticCard
from core.critic.model import CriticConfig, CriticModel, n_params

MASK_RATE = 0.15
STATE_FILE = "trainer_state.pt"


@dataclass
class MLMConfig:
    out_dir: str
    dataset_dir: str
    model: CriticConfig = field(default_factory=lambda: CriticConfig(vocab_size=0))
    batch_size: int = 48
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    max_steps: int = 3000
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_poems: int = 1000
    ckpt_minutes: float = 4.0
    seed: int = 1337
    threads: int = 1
    device: str | None = None  # core.device: None reads SHIREN_DEVICE (default: CUDA when present)


def encode_split(vocab: CharVocab, rows: list[dict], block: int) -> list[np.ndarray]:
    return [np.asarray(vocab.encode(r["text"], r["form"])[:block], dtype=np.int32) for r in rows]


def pad(seqs: list[np.ndarray], pad_id: int) -> torch.Tensor:
    T = max(len(s) for s in seqs)
    out = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def mask_batch(ids: torch.Tensor, vocab: CharVocab, mask_id: int, content: torch.Tensor,
               rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) with −100 where nothing is predicted. Only characters (not punctuation,
    control or padding tokens) are chosen; at least one per poem."""
    cand = content[ids] & (torch.arange(ids.shape[1]) >= BODY_OFFSET)
    u = torch.from_numpy(rng.random(ids.shape)).float()
    chosen = cand & (u < MASK_RATE)
    none = ~chosen.any(1) & cand.any(1)
    if none.any():  # the lowest-u candidate of a poem where the draw chose nothing
        first = torch.where(cand, u, torch.full_like(u, 2.0)).argmin(1)
        chosen[none.nonzero().flatten(), first[none]] = True
    v = torch.from_numpy(rng.random(ids.shape)).float()
    rand_tok = torch.from_numpy(rng.integers(0, vocab.size, ids.shape)).long()
    inputs = ids.clone()
    inputs[chosen & (v < 0.8)] = mask_id
    swap = chosen & (v >= 0.8) & (v < 0.9)
    inputs[swap] = rand_tok[swap]
    return inputs, ids.masked_fill(~chosen, -100)


def content_mask(vocab: CharVocab) -> torch.Tensor:
    from core.generate import _is_cjk

    return torch.tensor([_is_cjk(t) for t in vocab.id_to_tok] + [False])  # + [MASK]


def mlm_loss(model: CriticModel, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """(loss, correct, predicted) over the chosen positions; logits only where they are needed."""
    dev = next(model.parameters()).device
    inputs, targets = inputs.to(dev), targets.to(dev)
    sel = targets != -100
    h = model.hidden(inputs)[sel]
    logits = model.mlm_logits(h)
    y = targets[sel]
    return F.cross_entropy(logits, y), int((logits.argmax(-1) == y).sum()), int(y.numel())


@torch.no_grad()
def mlm_accuracy(model: CriticModel, seqs: list[np.ndarray], vocab: CharVocab, content: torch.Tensor,
                 seed: int = 0, batch: int = 64) -> tuple[float, float]:
    """(loss, accuracy) of the masked LM on these poems, with a fixed masking draw."""
    model.eval()
    rng = np.random.default_rng(seed)
    tot_loss, correct, n = 0.0, 0, 0
    for i in range(0, len(seqs), batch):
        ids = pad(seqs[i : i + batch], vocab.pad)
        x, y = mask_batch(ids, vocab, model.cfg.mask_id, content, rng)
        loss, c, k = mlm_loss(model, x, y)
        tot_loss += float(loss) * k
        correct += c
        n += k
    model.train()
    return tot_loss / max(1, n), correct / max(1, n)


def lr_factor(step: int, cfg: MLMConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def save_ckpt(ckpt: Path, model: CriticModel, opt, step: int, cfg: MLMConfig, tokenizer_json: dict,
              metrics: dict) -> None:
    """The model as a loadable critic (fp32) plus the trainer state, in one atomic dir."""
    from safetensors.torch import save_file

    from core.atomic import atomic_dir
    from core.critic.critic import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE

    with atomic_dir(ckpt) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(CriticCard(model.cfg, metrics=metrics).to_json(), "utf-8")
        (tmp / TOKENIZER_FILE).write_text(json.dumps(tokenizer_json, ensure_ascii=False), "utf-8")
        torch.save({"step": step, "optimizer": opt.state_dict()}, tmp / STATE_FILE)
        (tmp / "train_config.json").write_text(json.dumps(asdict(cfg), ensure_ascii=False, indent=1), "utf-8")


def train_mlm(cfg: MLMConfig, *, minutes: float | None = None, stop_after_steps: int | None = None,
              log=print) -> Critic:
    """Run (or resume) the masked-LM pretraining; returns the critic as it stands at the end."""
    from core.device import resolve_device
    from training.corpus import load_split

    torch.set_num_threads(cfg.threads)
    dev = resolve_device(cfg.device)
    out, ds = Path(cfg.out_dir), Path(cfg.dataset_dir)
    ckpt = out / "ckpt"
    tokenizer_json = json.loads((ds / "tokenizer" / "tokenizer.json").read_text("utf-8"))
    vocab = CharVocab(tokenizer_json)
    cfg.model.vocab_size = vocab.size + 1
    cfg.model.pad_id = vocab.pad
    content = content_mask(vocab)
    train = encode_split(vocab, load_split(ds, "train"), cfg.model.block_size)
    valid = encode_split(vocab, load_split(ds, "valid"), cfg.model.block_size)[: cfg.eval_poems]
    torch.manual_seed(cfg.seed)
    model = CriticModel(cfg.model).to(dev)  # initialised on the CPU: the same weights on any device
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98))
    step = 0
    if (ckpt / STATE_FILE).exists():
        saved = Critic.load(ckpt)
        if asdict(saved.card.model) != asdict(cfg.model):
            raise ValueError(f"{ckpt} holds another critic ({asdict(saved.card.model)}); use another --out")
        model.load_state_dict(saved.model.state_dict())
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        log(f"resuming at step {step}")
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"
    if step == 0:
        with open(metrics_file, "w", encoding="utf-8") as f:
            f.write(json.dumps({"event": "start", "params": n_params(model), "device": str(dev),
                                "config": asdict(cfg)}) + "\n")
    model.train()
    t_start = last_ckpt = time.time()
    end = cfg.max_steps if stop_after_steps is None else min(cfg.max_steps, step + stop_after_steps)
    metrics: dict = {}
    while step < end:
        if minutes is not None and time.time() - t_start > minutes * 60:
            break
        rng = np.random.default_rng([cfg.seed, step])
        idx = rng.integers(0, len(train), cfg.batch_size)
        x, y = mask_batch(pad([train[i] for i in idx], vocab.pad), vocab, cfg.model.mask_id, content, rng)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(step, cfg)
        loss, correct, n = mlm_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        row = {"step": step, "train_loss": round(loss.item(), 4), "train_acc": round(correct / max(1, n), 4),
               "time": time.time()}
        if step % cfg.eval_interval == 0 or step == cfg.max_steps:
            vl, va = mlm_accuracy(model, valid, vocab, content)
            row.update(valid_loss=round(vl, 4), valid_acc=round(va, 4))
            metrics = {"mlm_valid_loss": row["valid_loss"], "mlm_valid_acc": row["valid_acc"], "mlm_steps": step}
            log(f"step {step}: valid MLM loss {vl:.3f}, accuracy {va:.3f}")
        with open(metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60 or step == end:
            save_ckpt(ckpt, model, opt, step, cfg, tokenizer_json, metrics)
            last_ckpt = time.time()
    save_ckpt(ckpt, model, opt, step, cfg, tokenizer_json, metrics)
    return Critic.load(ckpt)
