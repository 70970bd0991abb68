"""Training checkpoints: model weights in safetensors, trainer state loaded with `weights_only=True`.

A checkpoint dir holds `config.json` + `model.safetensors` (HF format, fp32 master weights),
`trainer_state.pt` (optimizer, scheduler, RNG, step — tensors and plain values only) and
`train_config.json`. It is written to a temp dir and renamed, so a kill never leaves half of one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from core.atomic import atomic_dir
from core.types import ShirenError

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.json"


class CheckpointError(ShirenError):
    """A checkpoint is missing, corrupt or of another kind."""


def save(ckpt_dir: Path, model, optimizer, scheduler, step: int, train_config: dict, extra: dict | None = None) -> None:
    with atomic_dir(ckpt_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "extra": extra or {},
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(train_config, ensure_ascii=False, indent=1), "utf-8")


def load(ckpt_dir: Path, device: torch.device):
    """(model, trainer state dict, train config) from a checkpoint dir; clear errors for bad ones."""
    from transformers import AutoModelForCausalLM

    ckpt_dir = Path(ckpt_dir)
    needed = ["config.json", "model.safetensors", STATE_FILE, CONFIG_FILE]
    missing = [n for n in needed if not (ckpt_dir / n).exists()]
    if missing:
        raise CheckpointError(f"{ckpt_dir} is not a Shiren checkpoint (missing {', '.join(missing)})")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(ckpt_dir), dtype=torch.float32).to(device)
        state = torch.load(ckpt_dir / STATE_FILE, map_location="cpu", weights_only=True)
        train_config = json.loads((ckpt_dir / CONFIG_FILE).read_text("utf-8"))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt checkpoint
        raise CheckpointError(f"checkpoint {ckpt_dir} is corrupt or unreadable: {type(e).__name__}: {e}") from e
    return model, state, train_config


WEIGHTS_INFO_FILE = "shiren_training.json"
# Key of the safetensors metadata entry that carries the run's TrainConfig (JSON) inside the weights file.
META_TRAIN_CONFIG = "shiren_train_config"
META_STEP = "shiren_step"


def embed_train_config(weights: Path, train_config: dict, step: int) -> None:
    """Rewrite a safetensors file with the run's typed config and step in its metadata, so the weights
    alone say how they were trained (HF needs `format: pt` kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), "pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    meta.update({"format": "pt", META_TRAIN_CONFIG: json.dumps(train_config, ensure_ascii=False),
                 META_STEP: str(step)})
    tmp = weights.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(weights)


def load_weights_info(model_dir: Path) -> tuple[Path, dict]:
    """(weights file, {"step", "train_config"}) of an exported model or snapshot dir, without loading it."""
    from safetensors import safe_open

    model_dir = Path(model_dir)
    weights = model_dir / "model.safetensors"
    if not (model_dir / "config.json").exists() or not weights.exists():
        raise CheckpointError(f"{model_dir} holds no exported weights (config.json + model.safetensors)")
    try:
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata() or {}
        if META_TRAIN_CONFIG in meta:
            info = {"step": int(meta[META_STEP]), "train_config": json.loads(meta[META_TRAIN_CONFIG])}
        elif (model_dir / WEIGHTS_INFO_FILE).exists():  # exports made before the config went inside
            info = json.loads((model_dir / WEIGHTS_INFO_FILE).read_text("utf-8"))
        else:
            raise CheckpointError(f"{model_dir} does not record its training step and config")
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any parse failure means corrupt weights
        raise CheckpointError(f"weights in {model_dir} are corrupt or unreadable: {type(e).__name__}: {e}") from e
    return weights, info


def load_weights(model_dir: Path):
    """(fp32 model, {"step", "train_config"}) from an exported model or snapshot dir — weights only,
    safetensors, no optimizer state; the step and config come from the weights' own metadata."""
    from transformers import AutoModelForCausalLM

    _, info = load_weights_info(model_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - any parse failure means corrupt weights
        raise CheckpointError(f"weights in {model_dir} are corrupt or unreadable: {type(e).__name__}: {e}") from e
    return model, info
