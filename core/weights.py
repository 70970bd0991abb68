"""Loading a model for generation without transformers or peft: config.json + model.safetensors,
a LoRA adapter merged by hand, the tokenizer through `tokenizers`. Importing transformers and peft
costs ~3 s and ~200 MB, most of `shiren write`'s cold start; the decode engine needs neither.

The merge is peft's: W + (lora_alpha / r) · B @ A on every targeted linear (rsLoRA: alpha / sqrt(r)),
done in float32 (tests/test_weights.py checks it against `PeftModel.merge_and_unload`), and rounded
to the base's saved dtype when that is bf16/fp16 (the shipped base is bf16), as peft's merge is on a
model loaded in that dtype. Why: at n=1 a decode step is bound by streaming the weights from cache,
and the C kernel streams bf16-exact matrices as bf16, half the bytes of float32; the reference path
(`hf_model()`) is built from the same rounded numbers, so a seed still gives the same poems on both.
The HF model is still there when wanted (`LoadedWeights.hf_model()`: the reference path, benchmarks).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from core.adapters import ADAPTER_WEIGHTS
from core.fastlm import LlamaShape

_LORA_KEY = re.compile(r"^base_model\.model\.(?P<mod>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


class WeightsError(ValueError):
    """A model or adapter folder that cannot be used."""


class CharTokenizer:
    """The slice of a HF tokenizer's interface Shiren's generation uses, over `tokenizers` alone."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        cfg = json.loads((model_dir / "tokenizer_config.json").read_text("utf-8")) \
            if (model_dir / "tokenizer_config.json").exists() else {}
        vocab = self._tok.get_vocab(with_added_tokens=True)
        self.bos_token_id = vocab.get(cfg.get("bos_token", "<bos>"))
        self.eos_token_id = vocab.get(cfg.get("eos_token", "<eos>"))
        self.pad_token_id = vocab.get(cfg.get("pad_token", "<pad>"))

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self._tok.get_vocab(with_added_tokens=True)

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens).replace(" ", "")


def read_adapter_config(adapter: Path) -> dict:
    try:
        cfg = json.loads((adapter / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsError(f"cannot read {adapter / 'adapter_config.json'}: {e}") from e
    if cfg.get("peft_type") != "LORA":
        raise WeightsError(f"{adapter} is a {cfg.get('peft_type')} adapter; Shiren loads LoRA adapters")
    if cfg.get("use_dora") or cfg.get("fan_in_fan_out") or cfg.get("bias", "none") != "none":
        raise WeightsError(f"{adapter}: DoRA, fan-in-fan-out and bias-training adapters are not supported")
    return cfg


def _pattern_value(pattern: dict, module: str, default):
    """peft's rank_pattern / alpha_pattern lookup: the first key that matches as a regex on a dotted suffix."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def merge_lora(state_dict: dict[str, torch.Tensor], adapter: Path, round_to: torch.dtype | None = None) -> None:
    """Merge the LoRA adapter at `adapter` into `state_dict` (float32, in place); with `round_to`
    (bf16 / fp16) each merged matrix is rounded to that dtype's precision, still held as float32."""
    from safetensors.torch import load_file

    cfg = read_adapter_config(adapter)
    r, alpha = int(cfg.get("r", 8)), float(cfg.get("lora_alpha", 8))  # peft's LoraConfig defaults
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    try:
        lora = load_file(str(adapter / ADAPTER_WEIGHTS))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own SafetensorError on a corrupt file
        raise WeightsError(f"cannot read {adapter / ADAPTER_WEIGHTS}: {e}") from e
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in lora.items():
        m = _LORA_KEY.match(k)
        if not m:
            raise WeightsError(f"{adapter}: unexpected tensor {k!r} (only LoRA A/B matrices are supported)")
        pairs.setdefault(m["mod"], {})[m["ab"]] = v
    if not pairs:
        raise WeightsError(f"{adapter} holds no LoRA weights")
    for mod, ab in pairs.items():
        key = mod + ".weight"
        if key not in state_dict or set(ab) != {"A", "B"}:
            raise WeightsError(f"{adapter} does not fit this base model ({mod})")
        short = mod.rsplit(".", 1)[-1]
        rr = int(_pattern_value(rank_pattern, mod, r))
        aa = float(_pattern_value(alpha_pattern, mod, alpha))
        scale = aa / (rr ** 0.5) if cfg.get("use_rslora") else aa / rr
        w = state_dict[key]
        delta = ab["B"].float() @ ab["A"].float()  # (out, r) @ (r, in)
        if delta.shape != w.shape:
            raise WeightsError(f"{adapter} does not fit this base model ({short}: {tuple(delta.shape)} vs {tuple(w.shape)})")
        merged = w.float() + scale * delta
        state_dict[key] = merged.to(round_to).float() if round_to is not None else merged


@dataclass
class LoadedWeights:
    """A Llama model's config and (LoRA-merged, float32-held) weights, plus where they came from."""

    config: dict
    state_dict: dict[str, torch.Tensor]
    saved_dtype: torch.dtype
    # Served in int8 (core.quant): name → (codes, row scales); `state_dict` holds their dequantized values.
    quantized: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def shape(self) -> LlamaShape:
        return LlamaShape.from_config(self.config)

    @property
    def n_params(self) -> int:
        """Parameters held (a tied output layer counted once, as saved)."""
        return sum(t.numel() for t in self.state_dict.values())

    def hf_model(self):
        """The same weights as a transformers `LlamaForCausalLM` (imports transformers: ~3 s)."""
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = {k: v for k, v in self.config.items() if k not in ("architectures", "dtype", "torch_dtype",
                                                                 "transformers_version")}
        model = LlamaForCausalLM(LlamaConfig(**cfg)).float()
        missing, unexpected = model.load_state_dict(self.state_dict, strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:
            raise WeightsError(f"weights do not fit the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        if "lm_head.weight" in missing:
            model.tie_weights()
        return model.eval()


WEIGHT_FORMATS = ("bf16", "int8")


def load_llama(model_dir: Path, adapter: Path | None = None, weights: str = "bf16") -> LoadedWeights:
    """config.json + model.safetensors (+ a LoRA adapter merged in) from `model_dir`. `weights`: "bf16"
    serves the saved (merged, rounded) weights; "int8" the layer projections as int8 codes and row
    scales (core.quant), every path computing with their dequantized values."""
    if weights not in WEIGHT_FORMATS:
        raise WeightsError(f"unknown weight format {weights!r} (choose from {', '.join(WEIGHT_FORMATS)})")
    from safetensors.torch import load_file

    try:
        config = json.loads((model_dir / "config.json").read_text("utf-8"))
        LlamaShape.from_config(config)
        sd = load_file(str(model_dir / "model.safetensors"))
    except Exception as e:  # noqa: BLE001 - OSError, bad JSON, SafetensorError, missing keys: all one message
        raise WeightsError(f"cannot load the model at {model_dir}: {e}") from e
    saved = next(iter(sd.values())).dtype
    sd = {k: v.float() for k, v in sd.items()}
    if adapter is not None:
        merge_lora(sd, adapter, round_to=saved if saved in (torch.bfloat16, torch.float16) else None)
    quantized: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if weights == "int8":
        from core.quant import dequantize, is_layer_linear, quantize_rows

        for k in [k for k in sd if is_layer_linear(k)]:
            quantized[k] = quantize_rows(sd[k])
            sd[k] = dequantize(*quantized[k])
    return LoadedWeights(config, sd, saved, quantized)
