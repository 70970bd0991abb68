"""LoRA supervised fine-tuning (peft) of the base model on instruction data from the train split.

The adapter is saved as an immutable peft artefact: adapter_config.json, adapter_model.safetensors
and a README.md card naming the base model, the data and the losses.

Resumable, like pretraining: with a checkpoint dir, every `ckpt_minutes` the LoRA weights
(safetensors), the optimizer, scheduler and RNG state (`trainer_state.pt`, read back with
`weights_only=True`) and the history go there atomically; the same call again continues at the
saved step with the same data order (the examples are built from a seed), so a full pass over the
instruction set can span several sittings.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from core.atomic import atomic_dir
from training.pretrain import autocast, warmup_cosine

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GPT2_TARGETS = ("c_attn", "c_proj", "c_fc")
# `shiren train sft --modules`: which Llama projections carry LoRA ("all": LORA_TARGETS).
LORA_MODULE_SETS = {"all": LORA_TARGETS, "attn": LORA_TARGETS[:4], "mlp": LORA_TARGETS[4:]}


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
    threads: int = 0  # torch threads (0: all cores; on a shared machine 1 is faster, docs/training.md)

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed (not how often it saves, nor threads)."""
        d = asdict(self)
        d.pop("ckpt_minutes")
        d.pop("threads")
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


def collate(examples: list[tuple[str, str]], tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels), right-padded; labels are -100 on the prompt and on padding."""
    ids, labels = [], []
    for prompt, completion in examples:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        seq = (p + c)[:max_len]
        lab = ([-100] * len(p) + c)[:max_len]
        ids.append(seq)
        labels.append(lab)
    T = max(len(s) for s in ids)
    pad = tokenizer.pad_token_id
    x = torch.full((len(ids), T), pad, dtype=torch.long)
    y = torch.full((len(ids), T), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(ids, labels, strict=True)):
        x[i, : len(s)] = torch.tensor(s)
        y[i, : len(lab)] = torch.tensor(lab)
    return x, y


def sft_loss(model, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    attn = x != model.config.pad_token_id  # (B, T): padding masked out
    with autocast(x.device, bf16):
        logits = model(input_ids=x, attention_mask=attn.long()).logits  # (B, T, V)
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), y[:, 1:].reshape(-1), ignore_index=-100)


@torch.no_grad()
def eval_loss(model, examples, tokenizer, cfg: SFTConfig, device) -> float:
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(examples), cfg.batch_size):
        x, y = collate(examples[i : i + cfg.batch_size], tokenizer, cfg.max_len)
        tot += sft_loss(model, x.to(device), y.to(device), cfg.bf16).item() * len(x)
        n += len(x)
    model.train()
    return tot / max(1, n)


def train_sft(base, tokenizer, train_ex, valid_ex, cfg: SFTConfig, progress: bool = True, log=None,
              ckpt_dir: Path | None = None, run_identity: dict | None = None):
    """Train a LoRA adapter; returns (peft model, history of metrics). With `ckpt_dir`, resumable (see
    the module doc); `run_identity` adds what else the checkpoint must match (the base, the data)."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    device = next(base.parameters()).device
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
        start, hist = 0, {"valid_loss_before": eval_loss(model, valid_ex, tokenizer, cfg, device), "steps": []}
    bar = tqdm(range(start, cfg.max_steps), initial=start, total=cfg.max_steps, disable=not progress, unit="step",
               mininterval=2.0)
    t0 = time.time() - (hist["steps"][-1]["time"] if hist["steps"] else 0.0)
    last_ckpt = time.time()
    for step in bar:
        i = (step * cfg.batch_size) % max(1, len(train_ex) - cfg.batch_size + 1)
        x, y = collate(train_ex[i : i + cfg.batch_size], tokenizer, cfg.max_len)
        loss = sft_loss(model, x.to(device), y.to(device), cfg.bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        row = {"step": step + 1, "train_loss": round(loss.item(), 4), "time": round(time.time() - t0, 1)}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.max_steps:
            row["valid_loss"] = round(eval_loss(model, valid_ex, tokenizer, cfg, device), 4)
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
