"""LoRA supervised fine-tuning (peft) of the base model on instruction data from the train split.

The adapter is saved as an immutable peft artefact: adapter_config.json, adapter_model.safetensors
and a README.md card naming the base model, the data and the losses.

Resumable, like pretraining: with a checkpoint dir, every `ckpt_minutes` the LoRA weights
(safetensors), the optimizer, scheduler and RNG state (`trainer_state.pt`, read back with
`weights_only=True`) and the history go there atomically; the same call again continues at the
saved step with the same data order (the examples and the batches are built from a seed), so a full
pass over the instruction set can span several sittings.

Batches group examples of similar length (as HF's `group_by_length`): the instruction set mixes 五绝
of ~30 tokens with 词 of up to 192, and random batches of 32 padded to their longest carry 1.63× the
real tokens; grouped within spans of 50 batches they carry 1.01×. Each grouped batch's summed loss is
divided by one constant (the mean poem tokens of a batch), so every poem token weighs the same.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from core.atomic import atomic_dir
from training.pretrain import autocast, follow_free_cores, free_cores
from training.schedule import warmup_cosine

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GPT2_TARGETS = ("c_attn", "c_proj", "c_fc")
# `shiren train sft --modules`: which Llama projections carry LoRA ("all": LORA_TARGETS).
LORA_MODULE_SETS = {"all": LORA_TARGETS, "attn": LORA_TARGETS[:4], "mlp": LORA_TARGETS[4:]}
# Length grouping sorts examples within spans of this many batches, then shuffles the batches: spans
# large enough that a batch's examples have nearly equal lengths, small enough that the order stays random.
GROUP_SPAN_BATCHES = 50


@dataclass
class SFTConfig:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    lr: float = 1e-3
    batch_size: int = 32
    max_steps: int = 600
    warmup_steps: int = 30
    max_len: int = 192
    eval_every: int = 100
    seed: int = 0
    bf16: bool = True
    targets: tuple[str, ...] = field(default_factory=tuple)
    ckpt_minutes: float = 10.0  # how often a resumable run saves its state
    group_by_length: bool = True  # batches of similar lengths (module doc); False: consecutive examples
    threads: int = 0  # torch threads (0: all cores; on a shared machine 1 is faster, docs/training.md)
    adaptive_threads: bool = False  # follow the cores other processes leave free, up to `threads`

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed (not how often it saves, nor threads)."""
        d = asdict(self)
        for machine in ("ckpt_minutes", "threads", "adaptive_threads"):
            d.pop(machine)
        d["targets"] = list(d["targets"])
        return d


SFT_STATE_FILE = "trainer_state.pt"
SFT_META_FILE = "sft_run.json"
LORA_FILE = "lora.safetensors"


def save_sft_checkpoint(ckpt_dir: Path, model, opt, sched, step: int, hist: dict, identity: dict) -> None:
    """The run's state, atomically (a kill leaves the previous checkpoint whole)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    with atomic_dir(ckpt_dir) as tmp:
        lora = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model).items()}
        save_file(lora, str(tmp / LORA_FILE), metadata={"format": "pt"})
        torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "torch_rng": torch.get_rng_state()}, tmp / SFT_STATE_FILE)
        (tmp / SFT_META_FILE).write_text(json.dumps({"step": step, "identity": identity, "history": hist},
                                                    ensure_ascii=False, indent=1), "utf-8")


def load_sft_checkpoint(ckpt_dir: Path, model, opt, sched, identity: dict) -> tuple[int, dict] | None:
    """Restore a run's state into `model`/`opt`/`sched`: (step, history), or None where there is none.
    A checkpoint of another run (other data, base or settings) is refused with a clear message."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    from training.checkpoint import CheckpointError

    if not (ckpt_dir / SFT_META_FILE).exists():
        return None
    try:
        meta = json.loads((ckpt_dir / SFT_META_FILE).read_text("utf-8"))
        lora = load_file(str(ckpt_dir / LORA_FILE))
        state = torch.load(ckpt_dir / SFT_STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any parse failure means a corrupt checkpoint
        raise CheckpointError(f"SFT checkpoint {ckpt_dir} is corrupt or unreadable: {type(e).__name__}: {e}") from e
    if meta.get("identity") != identity:
        diff = sorted(k for k in set(identity) | set(meta.get("identity") or {})
                      if identity.get(k) != (meta.get("identity") or {}).get(k))
        raise CheckpointError(f"{ckpt_dir} holds another SFT run (differs in {', '.join(diff)}); "
                              "remove it or use another --name")
    set_peft_model_state_dict(model, lora)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), meta["history"]


def lora_model(base, cfg: SFTConfig):
    from peft import LoraConfig, get_peft_model

    targets = cfg.targets or (LORA_TARGETS if base.config.model_type == "llama" else GPT2_TARGETS)
    lc = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(targets),
                    task_type="CAUSAL_LM")
    return get_peft_model(base, lc)


def encode(examples: Sequence[tuple[str, str]], tokenizer) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) of each example, tokenized once for the whole run."""
    if not examples:
        return []
    prompts, completions = zip(*examples, strict=True)
    p = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    c = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    return list(zip(p, c, strict=True))


def poem_tokens(prompt_ids: Sequence[int], completion_ids: Sequence[int], max_len: int) -> int:
    """How many tokens of an example the loss counts: its completion, as far as `max_len` keeps it."""
    return max(0, min(len(completion_ids), max_len - len(prompt_ids)))


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int,
                           span_batches: int = GROUP_SPAN_BATCHES) -> list[list[int]]:
    """Every index once, in batches of similar lengths and a random order: shuffle, sort within spans
    of `span_batches` batches (longest first), cut into batches, shuffle the batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * span_batches
    batches = []
    for s in range(0, len(order), span):
        chunk = sorted(order[s : s + span], key=lambda j: -lengths[j])
        batches += [chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


class BatchOrder:
    """Which examples step k trains on, the same on every resume: epoch e = k // batches per epoch
    draws its own grouping (seed + e); without grouping, consecutive examples as they come."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: bool):
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.per_epoch = max(1, -(-len(lengths) // batch_size))
        self._epoch, self._batches = -1, []

    def __call__(self, step: int) -> list[int]:
        if not self.group:
            n = len(self.lengths)
            i = (step * self.batch_size) % max(1, n - self.batch_size + 1)
            return list(range(i, min(n, i + self.batch_size)))
        epoch = step // self.per_epoch
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = length_grouped_batches(self.lengths, self.batch_size, self.seed + epoch)
        return self._batches[step % self.per_epoch]


def collate(examples: Sequence[tuple[list[int], list[int]]], pad_id: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of encoded examples, right-padded; labels are -100 on the prompt and on padding."""
    ids, labels = [], []
    for p, c in examples:
        seq = (p + c)[:max_len]
        lab = ([-100] * len(p) + c)[:max_len]
        ids.append(seq)
        labels.append(lab)
    T = max(len(s) for s in ids)
    x = torch.full((len(ids), T), pad_id, dtype=torch.long)
    y = torch.full((len(ids), T), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(ids, labels, strict=True)):
        x[i, : len(s)] = torch.tensor(s)
        y[i, : len(lab)] = torch.tensor(lab)
    return x, y


def sft_loss(model, x: torch.Tensor, y: torch.Tensor, bf16: bool, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy on the poem tokens (labels not -100): their mean, or with "sum" their total."""
    attn = x != model.config.pad_token_id  # (B, T): padding masked out
    with autocast(x.device, bf16):
        logits = model(input_ids=x, attention_mask=attn.long()).logits  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1),
                           ignore_index=-100, reduction=reduction)


@torch.no_grad()
def eval_loss(model, encoded, pad_id: int, cfg: SFTConfig, device) -> float:
    """Mean loss per poem token over the encoded examples (batched by length: padding is not free)."""
    model.eval()
    order = sorted(range(len(encoded)), key=lambda j: len(encoded[j][0]) + len(encoded[j][1]))
    tot, n = 0.0, 0
    for i in range(0, len(order), cfg.batch_size):
        x, y = collate([encoded[j] for j in order[i : i + cfg.batch_size]], pad_id, cfg.max_len)
        tot += sft_loss(model, x.to(device), y.to(device), cfg.bf16, reduction="sum").item()
        n += int((y[:, 1:] != -100).sum())
    model.train()
    return tot / max(1, n)


def train_sft(base, tokenizer, train_ex, valid_ex, cfg: SFTConfig, progress: bool = True, log=None,
              ckpt_dir: Path | None = None, run_identity: dict | None = None):
    """Train a LoRA adapter; returns (peft model, history of metrics). With `ckpt_dir`, resumable (see
    the module doc); `run_identity` adds what else the checkpoint must match (the base, the data)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    threads = cfg.threads or max(1, os.cpu_count() or 1)
    torch.set_num_threads(threads)
    device = next(base.parameters()).device
    pad_id = tokenizer.pad_token_id
    train_enc, valid_enc = encode(train_ex, tokenizer), encode(valid_ex, tokenizer)
    if not train_enc:
        raise ValueError("no training examples")
    batch_of = BatchOrder([min(cfg.max_len, len(p) + len(c)) for p, c in train_enc], cfg.batch_size, cfg.seed,
                          cfg.group_by_length)
    # Grouped batches hold one length each: a per-batch mean would weigh a 五绝 batch's tokens ~6x a 词
    # batch's. Dividing each batch's summed loss by one constant, the mean poem tokens of a batch over
    # the whole set, weighs every token alike, as random batches did on average.
    per_batch = cfg.batch_size * sum(poem_tokens(p, c, cfg.max_len) for p, c in train_enc) / len(train_enc)
    model = lora_model(base, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg.warmup_steps, cfg.max_steps, 0.1))
    identity = {**cfg.identity(), **(run_identity or {}), "train_examples": len(train_ex)}
    resumed = load_sft_checkpoint(Path(ckpt_dir), model, opt, sched, identity) if ckpt_dir else None
    if resumed is not None:
        start, hist = resumed
        hist.setdefault("resumes", []).append(start)
        if log:
            log({"resumed_at": start})
    else:
        start, hist = 0, {"valid_loss_before": eval_loss(model, valid_enc, pad_id, cfg, device), "steps": []}
    bar = tqdm(range(start, cfg.max_steps), initial=start, total=cfg.max_steps, disable=not progress, unit="step",
               mininterval=2.0)
    t0 = time.time() - (hist["steps"][-1]["time"] if hist["steps"] else 0.0)
    last_ckpt = time.time()
    cores = free_cores(threads) if cfg.adaptive_threads and device.type == "cpu" else None
    for step in bar:
        follow_free_cores(cores)
        x, y = collate([train_enc[j] for j in batch_of(step)], pad_id, cfg.max_len)
        total = sft_loss(model, x.to(device), y.to(device), cfg.bf16, reduction="sum")
        n_tokens = max(1, int((y[:, 1:] != -100).sum()))
        opt.zero_grad(set_to_none=True)
        (total / (per_batch if cfg.group_by_length else n_tokens)).backward()
        loss = total.detach() / n_tokens  # what is logged: this batch's mean loss per poem token
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        row = {"step": step + 1, "train_loss": round(loss.item(), 4), "time": round(time.time() - t0, 1)}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.max_steps:
            row["valid_loss"] = round(eval_loss(model, valid_enc, pad_id, cfg, device), 4)
        hist["steps"].append(row)
        if log:
            log(row)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if ckpt_dir and (time.time() - last_ckpt > cfg.ckpt_minutes * 60 or step + 1 == cfg.max_steps):
            save_sft_checkpoint(Path(ckpt_dir), model, opt, sched, step + 1, hist, identity)
            last_ckpt = time.time()
    hist["valid_loss_after"] = hist["steps"][-1].get("valid_loss")
    hist["seconds"] = round(time.time() - t0, 1)
    return model, hist


def save_adapter(model, out_dir: Path, base_name: str, cfg: SFTConfig, hist: dict, data_info: dict) -> None:
    """The adapter folder as one immutable artefact (written to a temp dir, then renamed)."""
    with atomic_dir(out_dir) as tmp:
        model.peft_config["default"].base_model_name_or_path = base_name
        # The vocabulary is the base model's own: no embedding layers to save, no hub lookup to check.
        model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        (tmp / "training.json").write_text(json.dumps({"config": asdict(cfg), "history": hist, "data": data_info},
                                                      ensure_ascii=False, indent=1), "utf-8")
        (tmp / "README.md").write_text(adapter_card(out_dir.name, base_name, cfg, hist, data_info), "utf-8")


def save_bf16_copy(adapter: Path, out_dir: Path) -> None:
    """A copy of an adapter folder with its LoRA matrices in bf16: what the repository ships (half the
    bytes of the fp32 ones training writes). Loading computes the merge in fp32 and rounds it to the
    bf16 base either way, so the poems change only by that rounding; everything else is copied as is."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from core.adapters import ADAPTER_WEIGHTS as weights
    tensors = load_file(str(adapter / weights))
    with atomic_dir(out_dir) as tmp:
        for f in adapter.iterdir():
            if f.is_file() and f.name != weights:
                shutil.copy2(f, tmp / f.name)
        save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in tensors.items()},
                  str(tmp / weights), metadata={"format": "pt"})


def adapter_card(name: str, base: str, cfg: SFTConfig, hist: dict, data: dict) -> str:
    steps = hist["steps"]
    evals = [r for r in steps if "valid_loss" in r]
    table = "\n".join(f"| {r['step']} | {r['train_loss']:.3f} | {r['valid_loss']:.3f} |" for r in evals)
    return f"""# Shiren LoRA adapter `{name}`

- base model: `{base}`
- method: LoRA (peft), rank {cfg.rank}, alpha {cfg.alpha}, dropout {cfg.dropout}, targets {', '.join(cfg.targets) or 'all attention and MLP projections'}
- data: {data.get('train_examples', '?'):,} instruction examples from the train split (forms {', '.join(data.get('forms', []))}); valid {data.get('valid_examples', '?'):,}
- conditions: title, keywords drawn from the poem, acrostic (line heads), first line — each present at random
- steps: {len(steps)} × batch {cfg.batch_size}, lr {cfg.lr}, {hist.get('seconds', 0) / 60:.1f} min on {data.get('hardware', 'CPU')}
- valid loss (poem tokens only): {hist['valid_loss_before']:.3f} before → {hist.get('valid_loss_after') or float('nan'):.3f} after

| step | train loss | valid loss |
|---:|---:|---:|
{table}
"""
