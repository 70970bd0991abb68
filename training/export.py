"""Turn a finished training checkpoint into the shipped HF model dir (bf16 safetensors + tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.atomic import atomic_dir
from training import checkpoint


def export_base(ckpt_dir: Path, tokenizer_dir: Path, out_dir: Path, dtype: str = "bfloat16") -> dict:
    """Write config + model.safetensors (in `dtype`) + tokenizer to out_dir atomically; returns a summary."""
    model, state, train_cfg = checkpoint.load(ckpt_dir, torch.device("cpu"))
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    model = model.to(getattr(torch, dtype))
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id).save_pretrained(str(tmp))
        info = {"step": int(state["step"]), "train_config": train_cfg}
        (tmp / "shiren_training.json").write_text(json.dumps(info, ensure_ascii=False, indent=1), "utf-8")
    return info
