"""Masked-LM pretraining of the critic (core.critic.model) on the train split, nanoGPT style.

Each poem is one sequence (<bos> <form> text <eos>). `mask_rate` of its characters are chosen (BERT's
rule: 80% [MASK], 10% a random char, 10% kept) and predicted. Only the chosen characters teach, so the
rate sets how much each step learns: 15% (BERT) starved the first run (2,000 steps reached accuracy 0.12);
Wettig et al. (2023, "Should You Mask 15% in Masked Language Modeling?") find higher rates as good or
better. A batch is drawn from one length bucket (poems of similar length, so little of it is padding: a
词 of 160 tokens no longer pads 47 五绝 beside it). Batches and masks depend only on (seed, step), and every `ckpt_minutes` the full state goes atomically to `<out>/ckpt`, so rerunning the same
command resumes exactly where it stopped. `minutes` caps one session's wall time (the schedule keeps
its length: a later run continues it). It trains on CUDA when present (core.device: SHIREN_DEVICE=cpu
keeps it on the CPU); batches and masks are drawn on the CPU either way, so they are the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.critic.critic import BODY_OFFSET, CharVocab, Critic, CriticCard, char_mask
from core.critic.model import CriticConfig, CriticModel, n_params
from training.schedule import rewarm, warmup_cosine

STATE_FILE = "trainer_state.pt"


@dataclass
class MLMConfig:
    out_dir: str
    dataset_dir: str
    model: CriticConfig = field(default_factory=lambda: CriticConfig(vocab_size=0))
    batch_size: int = 48
    mask_rate: float = 0.15
    length_buckets: int = 1  # 1: draw from all poems (the first run); more: one bucket of similar lengths per batch
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
    # A critic dir (e.g. the committed models/critic) to restart from when OUT/ckpt is missing — a new
    # machine lost the data dir: its weights, its step (card's mlm_steps), a fresh optimizer whose learning
    # rate re-warms over `rewarm_steps` (Adam's moments start at zero).
    init_from: str = ""
    rewarm_steps: int = 100


def encode_split(vocab: CharVocab, rows: list[dict], block: int) -> list[np.ndarray]:
    return [np.asarray(vocab.encode(r["text"], r["form"])[:block], dtype=np.int32) for r in rows]


def pad(seqs: list[np.ndarray], pad_id: int) -> torch.Tensor:
    T = max(len(s) for s in seqs)
    out = np.full((len(seqs), T), pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return torch.from_numpy(out)


def mask_batch(ids: torch.Tensor, vocab: CharVocab, mask_id: int, content: torch.Tensor,
               rng: np.random.Generator, rate: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) with −100 where nothing is predicted. Only characters (not punctuation,
    control or padding tokens) are chosen; at least one per poem."""
    cand = content[ids] & (torch.arange(ids.shape[1]) >= BODY_OFFSET)
    u = torch.from_numpy(rng.random(ids.shape)).float()
    chosen = cand & (u < rate)
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


def length_buckets(seqs: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Indices of `seqs` in `n` buckets of consecutive lengths, each about the same number of poems."""
    order = np.argsort(np.array([len(s) for s in seqs]), kind="stable")
    return [b for b in np.array_split(order, n) if len(b)]


def draw_batch(buckets: list[np.ndarray], batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A bucket (chosen in proportion to its size, so every poem is as likely as with one bucket), then
    `batch_size` of its poems with replacement."""
    sizes = np.array([len(b) for b in buckets], dtype=np.float64)
    b = buckets[int(rng.choice(len(buckets), p=sizes / sizes.sum()))]
    return b[rng.integers(0, len(b), batch_size)]


def lr_factor(step: int, cfg: MLMConfig, restarted_at: int | None = None) -> float:
    """The masked LM's schedule (training.schedule), re-warmed after a restart from weights."""
    return warmup_cosine(step, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio) * rewarm(step, restarted_at,
                                                                                          cfg.rewarm_steps)


def save_ckpt(ckpt: Path, model: CriticModel, opt, step: int, cfg: MLMConfig, tokenizer_json: dict,
              metrics: dict, restarted_at: int | None = None) -> None:
    """The model as a loadable critic (fp32) plus the trainer state, in one atomic dir."""
    from safetensors.torch import save_file

    from core.atomic import atomic_dir
    from core.critic.critic import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE

    with atomic_dir(ckpt) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS_FILE))
        (tmp / CONFIG_FILE).write_text(CriticCard(model.cfg, metrics=metrics).to_json(), "utf-8")
        (tmp / TOKENIZER_FILE).write_text(json.dumps(tokenizer_json, ensure_ascii=False), "utf-8")
        torch.save({"step": step, "optimizer": opt.state_dict(),
                    **({"restarted_at": restarted_at} if restarted_at is not None else {})}, tmp / STATE_FILE)
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
    content = char_mask(vocab)
    train = encode_split(vocab, load_split(ds, "train"), cfg.model.block_size)
    valid = encode_split(vocab, load_split(ds, "valid"), cfg.model.block_size)[: cfg.eval_poems]
    buckets = length_buckets(train, cfg.length_buckets)
    torch.manual_seed(cfg.seed)
    model = CriticModel(cfg.model).to(dev)  # initialised on the CPU: the same weights on any device
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(0.9, 0.98))
    step, restarted_at, metrics = 0, None, {}
    resume = (ckpt / STATE_FILE).exists()
    src = ckpt if resume else Path(cfg.init_from) if cfg.init_from else None
    if src is not None:  # this run's checkpoint, else the weights to restart from
        saved = Critic.load(src)
        if asdict(saved.card.model) != asdict(cfg.model):
            raise ValueError(f"{src} holds another critic ({asdict(saved.card.model)})"
                             + ("; use another --out" if resume else ""))
        model.load_state_dict(saved.model.state_dict())
        metrics = {k: v for k, v in saved.card.metrics.items() if k.startswith("mlm_")}
        if resume:
            state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
            opt.load_state_dict(state["optimizer"])
            step = int(state["step"])
            restarted_at = state.get("restarted_at")
            log(f"resuming at step {step}")
        else:
            step = restarted_at = int(metrics.get("mlm_steps", 0))
            log(f"no checkpoint in {ckpt}: restarting from the weights of {src} at step {step} "
                f"(fresh optimizer, {cfg.rewarm_steps} steps of re-warm-up)")
    out.mkdir(parents=True, exist_ok=True)
    metrics_file = out / "metrics.jsonl"
    if step == 0 or (restarted_at == step and not metrics_file.exists()):
        with open(metrics_file, "w", encoding="utf-8") as f:
            f.write(json.dumps({"event": "start", "params": n_params(model), "device": str(dev),
                                "config": asdict(cfg)}) + "\n")
    model.train()
    t_start = last_ckpt = time.time()
    end = cfg.max_steps if stop_after_steps is None else min(cfg.max_steps, step + stop_after_steps)
    while step < end:
        if minutes is not None and time.time() - t_start > minutes * 60:
            break
        rng = np.random.default_rng([cfg.seed, step])
        idx = rng.integers(0, len(train), cfg.batch_size) if cfg.length_buckets <= 1 else \
            draw_batch(buckets, cfg.batch_size, rng)
        x, y = mask_batch(pad([train[i] for i in idx], vocab.pad), vocab, cfg.model.mask_id, content, rng,
                          cfg.mask_rate)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(step, cfg, restarted_at)
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
            metrics = {"mlm_valid_loss": row["valid_loss"], "mlm_valid_acc": row["valid_acc"], "mlm_steps": step,
                       "mlm_batch": cfg.batch_size, "mlm_mask_rate": cfg.mask_rate}
            log(f"step {step}: valid MLM loss {vl:.3f}, accuracy {va:.3f}")
        with open(metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        if time.time() - last_ckpt > cfg.ckpt_minutes * 60 or step == end:
            save_ckpt(ckpt, model, opt, step, cfg, tokenizer_json, metrics, restarted_at)
            last_ckpt = time.time()
    save_ckpt(ckpt, model, opt, step, cfg, tokenizer_json, metrics, restarted_at)
    return Critic.load(ckpt)
