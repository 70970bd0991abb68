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
