"""Model configs for the base poetry GPT. No I/O here: configs in, HF models out.

Two stock transformers architectures are supported so they can be compared on equal terms:
GPT-2 (learned positions, LayerNorm, GELU MLP) and Llama-style (RoPE, RMSNorm, SwiGLU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class GPTConfig:
    arch: str = "gpt2"  # "gpt2" | "llama"
    vocab_size: int = 8000
    block_size: int = 256  # longest sequence the model sees (a long 词 with its header fits)
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.0  # one epoch on 20M tokens: the model underfits, dropout only slows it
    bos_token_id: int = 2
    eos_token_id: int = 3
    pad_token_id: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


# Presets for `shiren train pretrain --size`.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64),  # tests
    "small": dict(n_layer=4, n_head=4, n_embd=256),  # ~5M with an 8k vocab
    "base": dict(n_layer=6, n_head=6, n_embd=384),  # ~14M with an 8k vocab
    "medium": dict(n_layer=12, n_head=12, n_embd=768),  # GPU only
}


def hf_config(cfg: GPTConfig):
    """The transformers config for `cfg`, so `AutoModelForCausalLM.from_pretrained` rebuilds it unchanged."""
    common = dict(
        vocab_size=cfg.vocab_size,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
        tie_word_embeddings=True,
    )
    if cfg.arch == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(
            n_positions=cfg.block_size,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_embd=cfg.n_embd,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            **common,
        )
    if cfg.arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            max_position_embeddings=cfg.block_size,
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_head,
            hidden_size=cfg.n_embd,
            # SwiGLU has three matrices; 8/3·d keeps parameters equal to GPT-2's 4·d MLP.
            intermediate_size=int(8 * cfg.n_embd / 3 + 63) // 64 * 64,
            attention_dropout=cfg.dropout,
            **common,
        )
    raise ValueError(f"unknown arch {cfg.arch!r}; use gpt2 or llama")


def build_model(cfg: GPTConfig):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(hf_config(cfg))


def n_params(model) -> int:
    """Parameters counted once (tied embeddings are shared)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
