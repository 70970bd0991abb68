"""Turn a training checkpoint into an HF model dir (bf16 safetensors with the run's config inside + tokenizer).

`export_base` makes the shipped model; `export_snapshot` makes the one mid-run snapshot that is
committed (models/base-snapshot: weights only, no optimizer state, no corpus clauses) so a run whose
data dir is lost restarts from it on another machine (`shiren train pretrain --resume-from-weights`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.atomic import atomic_dir
from core.corpus_lines import FILE_NAME as CORPUS_LINES_FILE
from core.corpus_lines import CorpusLines
from training import checkpoint


def export_base(ckpt_dir: Path, tokenizer_dir: Path, out_dir: Path, dataset_dir: Path | None = None,
                dtype: str = "bfloat16") -> dict:
    """Write config + model.safetensors (in `dtype`) + tokenizer (+ the corpus clause set) atomically."""
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
        checkpoint.embed_train_config(tmp / "model.safetensors", train_cfg, info["step"])
        if dataset_dir is not None:
            info["corpus_lines"] = build_corpus_lines(dataset_dir, tmp / CORPUS_LINES_FILE)
        (tmp / "shiren_training.json").write_text(json.dumps(info, ensure_ascii=False, indent=1), "utf-8")
    return info


def build_corpus_lines(dataset_dir: Path, out: Path) -> int:
    """Every clause of every split (the generator must not copy any line of the corpus)."""
    from training.corpus import SPLITS, load_split
    from training.sft_data import clauses

    lines = CorpusLines.from_clauses(c for s in SPLITS for r in load_split(dataset_dir, s) for c in clauses(r["text"]))
    lines.save(out)
    return len(lines)


def export_snapshot(ckpt_dir: Path, tokenizer_dir: Path, out_dir: Path) -> dict:
    """The mid-run snapshot to commit: replaces any previous one (one snapshot at most)."""
    return export_base(ckpt_dir, tokenizer_dir, out_dir, dataset_dir=None)
