"""A lean inference forward for the Llama-style base model: preallocated KV cache, fused projections.

Stock `model.generate()` spends most of each step in Python around the model (cache objects, mask
building, output dataclasses); the model's arithmetic for one token is ~0.1 ms here. This module
runs the same weights (after LoRA merge) with ~15 tensor ops per layer and no per-step allocation
of cache structures. Rows are independent slots of one cache, each at its own position, so requests
of different lengths share one decode batch (core.engine).

Numerically it matches the HF model (checked in tests/test_fastlm.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class FastLlama:
    """Inference-only view of a `LlamaForCausalLM`'s weights."""

    def __init__(self, hf_model, max_rows: int = 64, max_len: int | None = None, dtype: torch.dtype = torch.float32):
        cfg = hf_model.config
        if cfg.model_type != "llama":
            raise ValueError(f"FastLlama needs a llama model, got {cfg.model_type}")
        self.n_layer = cfg.num_hidden_layers
        self.n_head = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.d = cfg.hidden_size
        self.hd = getattr(cfg, "head_dim", None) or self.d // self.n_head
        self.eps = cfg.rms_norm_eps
        self.max_len = max_len or cfg.max_position_embeddings
        self.max_rows = max_rows
        self.dtype = dtype
        m = hf_model.model
        sd = {k: v.detach().to(dtype) for k, v in hf_model.state_dict().items()}
        self.embed = sd["model.embed_tokens.weight"]  # (V, d)
        self.lm_head = sd.get("lm_head.weight", self.embed)  # (V, d), tied
        self.layers = []
        for i in range(self.n_layer):
            p = f"model.layers.{i}."
            qkv = torch.cat([sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"],
                             sd[p + "self_attn.v_proj.weight"]], 0).t().contiguous()  # (d, (H+2Hkv)·hd)
            gate_up = torch.cat([sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"]], 0).t().contiguous()
            self.layers.append((sd[p + "input_layernorm.weight"], qkv, sd[p + "self_attn.o_proj.weight"].t().contiguous(),
                                sd[p + "post_attention_layernorm.weight"], gate_up, sd[p + "mlp.down_proj.weight"].t().contiguous()))
        self.norm = sd["model.norm.weight"]
        theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", getattr(cfg, "rope_theta", 10000.0))
        inv = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        t = torch.arange(self.max_len, dtype=torch.float32)
        freqs = torch.outer(t, inv)  # (T, hd/2)
        emb = torch.cat([freqs, freqs], -1)  # (T, hd)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)
        self.vocab_size = self.embed.shape[0]
        del m
        self.reset()

    def reset(self) -> None:
        shape = (self.n_layer, self.max_rows, self.n_kv, self.max_len, self.hd)
        self.k = torch.zeros(shape, dtype=self.dtype)
        self.v = torch.zeros(shape, dtype=self.dtype)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w

    @staticmethod
    def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * cos + rot * sin

    @torch.inference_mode()
    def forward(self, tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) at the last position, for tokens (B, T) fed to cache `rows` (B,) at positions
        start (B,) .. start+T-1. Every row of one call feeds the same number of tokens T."""
        B, T = tokens.shape
        H, Hkv, hd = self.n_head, self.n_kv, self.hd
        pos = start[:, None] + torch.arange(T)  # (B, T)
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # (B, 1, T, hd)
        L = int(pos.max()) + 1
        keypos = torch.arange(L)
        # (B, 1, T, L): a query sees keys at or before its own position (earlier cache entries of its row).
        allowed = keypos[None, None, None, :] <= pos[:, None, :, None]
        bias = torch.zeros(allowed.shape, dtype=self.dtype).masked_fill_(~allowed, float("-inf"))
        x = self.embed[tokens]  # (B, T, d)
        rep = H // Hkv
        for li, (ln1, qkv_w, o_w, ln2, gu_w, down_w) in enumerate(self.layers):
            h = self._rms(x, ln1)
            qkv = h @ qkv_w  # (B, T, (H+2Hkv)·hd)
            q, k, v = qkv.split([H * hd, Hkv * hd, Hkv * hd], -1)
            q = self._rope(q.view(B, T, H, hd).transpose(1, 2), cos, sin)  # (B, H, T, hd)
            k = self._rope(k.view(B, T, Hkv, hd).transpose(1, 2), cos, sin)  # (B, Hkv, T, hd)
            v = v.view(B, T, Hkv, hd).transpose(1, 2)
            kc, vc = self.k[li], self.v[li]  # (R, Hkv, Tmax, hd)
            kc[rows[:, None], :, pos] = k.transpose(1, 2)  # write (B, T, Hkv, hd) at each row's positions
            vc[rows[:, None], :, pos] = v.transpose(1, 2)
            K, V = kc[rows, :, :L], vc[rows, :, :L]  # (B, Hkv, L, hd)
            if rep > 1:
                K, V = K.repeat_interleave(rep, 1), V.repeat_interleave(rep, 1)
            att = F.scaled_dot_product_attention(q, K, V, attn_mask=bias)  # (B, H, T, hd)
            x = x + att.transpose(1, 2).reshape(B, T, H * hd) @ o_w
            h = self._rms(x, ln2)
            g, u = (h @ gu_w).chunk(2, -1)
            x = x + (F.silu(g) * u) @ down_w
        x = self._rms(x[:, -1], self.norm)  # (B, d)
        return (x @ self.lm_head.t()).float()  # (B, V)
