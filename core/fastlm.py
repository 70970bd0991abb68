"""A lean inference forward for the Llama-style base model: preallocated KV cache, pre-packed GEMMs.

Why not the HF module: at this model's size (5M parameters, d=256) one decode step is ~20 tiny GEMMs
plus ~100 small tensor ops, and the time goes to per-call cost, not arithmetic (docs/bench.md). So
this forward keeps the op count down and makes each op cheap:
- weights are packed once for oneDNN (`torch.ops.mkldnn._reorder_linear_weight`); a plain `x @ W.T`
  re-packs the weight on every call, which at batch 4 costs more than the multiply itself;
- SiLU, the SwiGLU product and both residual adds are fused into the GEMMs as oneDNN post-ops;
- RoPE is one complex multiply: q/k output features are permuted once so that rotate-half pairs
  (i, i + hd/2) sit side by side (the same permutation on q and k leaves q·k unchanged);
- one KV cache tensor per layer, K and V side by side, so a step writes and reads it with one op;
- no attention mask at all when every row is at the same position (one request), `is_causal` for
  a fresh prefill, an explicit bias only when rows of different requests share a step.
Rows are independent slots of the cache, each at its own position, so requests of different lengths
share one decode batch (core.engine). It does no I/O: weights come in as a state dict.

Numerically it matches the HF model (tests/test_engine.py): to 1e-4 in float32; in bfloat16 (the
shipped weights' dtype, and faster here: the CPU has avx512_bf16) to bf16 rounding.

On a GPU (`device="cuda"`) the same code runs with plain matmuls (cuBLAS; the oneDNN packing is CPU-only),
the weights, RoPE table and KV cache on the device; callers may pass rows and positions on the CPU (they
are read on the host to pick the attention mask) and tokens on either. `fused=False` runs those plain
matmuls on the CPU too, so the GPU's code path is tested on machines without one (tests/test_device.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.device import canonical


@dataclass(frozen=True)
class LlamaShape:
    """The architecture facts the forward needs, read from a HF `config.json`."""

    n_layer: int
    n_head: int
    n_kv_head: int
    n_embd: int
    head_dim: int
    intermediate: int
    vocab_size: int
    block_size: int
    rms_eps: float
    rope_theta: float
    tie_embeddings: bool

    @classmethod
    def from_config(cls, cfg: dict) -> LlamaShape:
        if cfg.get("model_type") != "llama":
            raise ValueError(f"FastLlama needs a llama model, got {cfg.get('model_type')!r}")
        if (cfg.get("rope_scaling") or {}).get("rope_type", "default") != "default" or \
                (cfg.get("rope_parameters") or {}).get("rope_type", "default") != "default":
            raise ValueError("FastLlama supports only the default RoPE")
        d, h = cfg["hidden_size"], cfg["num_attention_heads"]
        theta = (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))
        return cls(n_layer=cfg["num_hidden_layers"], n_head=h, n_kv_head=cfg.get("num_key_value_heads") or h,
                   n_embd=d, head_dim=cfg.get("head_dim") or d // h, intermediate=cfg["intermediate_size"],
                   vocab_size=cfg["vocab_size"], block_size=cfg["max_position_embeddings"],
                   rms_eps=cfg["rms_norm_eps"], rope_theta=float(theta),
                   tie_embeddings=bool(cfg.get("tie_word_embeddings", False)))


def _onednn_ok() -> bool:
    try:
        w = torch.zeros(8, 8)
        p = torch.ops.mkldnn._reorder_linear_weight(w, 1)
        torch.ops.mkldnn._linear_pointwise(torch.zeros(1, 8), p, None, "none", [], "")
        return True
    except (RuntimeError, AttributeError, NotImplementedError):
        return False


_ONEDNN: bool | None = None


class Linear:
    """y = x @ W.T (W: (out, in)), pre-packed for oneDNN on CPU, with fused post-ops; plain torch elsewhere."""

    def __init__(self, w: torch.Tensor, batch_hint: int = 4, fused: bool = True):
        global _ONEDNN
        if _ONEDNN is None:
            _ONEDNN = _onednn_ok()
        self.out_features = w.shape[0]
        self.packed = None
        if fused and _ONEDNN and w.device.type == "cpu":
            self.packed = torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), batch_hint)
        else:
            self.wt = w.t().contiguous()  # (in, out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        return x @ self.wt

    def silu(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "swish", [], "")
        return F.silu(x @ self.wt)

    def add(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """x @ W.T + other"""
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, self.packed, None, "add")
        return other + x @ self.wt

    def mul(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """(x @ W.T) * other"""
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, other, self.packed, None, "mul")
        return (x @ self.wt) * other


@dataclass
class _Layer:
    ln1: torch.Tensor
    qkv: Linear
    o: Linear
    ln2: torch.Tensor
    gate: Linear
    up: Linear
    down: Linear


def _rotate_pairs_perm(n_heads: int, hd: int) -> torch.Tensor:
    """Output-feature order that puts each head's rotate-half pair (i, i + hd/2) side by side."""
    half = torch.arange(hd // 2)
    within = torch.stack([half, half + hd // 2], -1).flatten()  # (hd,) 0, h, 1, h+1, …
    return (torch.arange(n_heads)[:, None] * hd + within[None]).flatten()


class FastLlama:
    """Inference-only forward over a Llama state dict (HF names; LoRA already merged)."""

    def __init__(self, shape: LlamaShape, state_dict: dict[str, torch.Tensor], max_rows: int = 64,
                 max_len: int | None = None, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu", fused: bool = True):
        """`device`: where weights, cache and compute live. `fused`: oneDNN-packed GEMMs with fused
        post-ops where that works (the CPU); False: plain matmuls (what a GPU runs) everywhere."""
        self.shape = shape
        self.device = canonical(device)
        self.n_layer, self.n_head, self.n_kv = shape.n_layer, shape.n_head, shape.n_kv_head
        self.d, self.hd, self.eps = shape.n_embd, shape.head_dim, shape.rms_eps
        self.max_len = max_len or shape.block_size
        self.max_rows = max_rows
        self.dtype = dtype
        sd = {k.removeprefix("base_model.model."): v.detach() for k, v in state_dict.items()}

        def w(name: str) -> torch.Tensor:
            return sd[name].to(self.device, dtype)

        def lin(t: torch.Tensor) -> Linear:
            return Linear(t, fused=fused)

        H, Hkv, hd = self.n_head, self.n_kv, self.hd
        pq, pk = _rotate_pairs_perm(H, hd), _rotate_pairs_perm(Hkv, hd)
        self.embed = w("model.embed_tokens.weight")  # (V, d)
        head = self.embed if shape.tie_embeddings or "lm_head.weight" not in sd else w("lm_head.weight")
        self.lm_head = lin(head)
        self.layers: list[_Layer] = []
        for i in range(self.n_layer):
            p = f"model.layers.{i}."
            qkv = torch.cat([w(p + "self_attn.q_proj.weight")[pq.to(self.device)],
                             w(p + "self_attn.k_proj.weight")[pk.to(self.device)],
                             w(p + "self_attn.v_proj.weight")], 0)  # ((H+2Hkv)·hd, d)
            self.layers.append(_Layer(
                w(p + "input_layernorm.weight"), lin(qkv), lin(w(p + "self_attn.o_proj.weight")),
                w(p + "post_attention_layernorm.weight"), lin(w(p + "mlp.gate_proj.weight")),
                lin(w(p + "mlp.up_proj.weight")), lin(w(p + "mlp.down_proj.weight"))))
        self.norm = w("model.norm.weight")
        inv = 1.0 / (shape.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))  # (hd/2,)
        freqs = torch.outer(torch.arange(self.max_len, dtype=torch.float32), inv)  # (T, hd/2)
        self.cis = torch.polar(torch.ones_like(freqs), freqs).to(self.device)  # (T, hd/2) complex64
        self.vocab_size = self.embed.shape[0]
        self._ar = torch.arange(self.max_len, device=self.device)
        self.reset()

    @classmethod
    def from_hf(cls, model, **kw) -> FastLlama:
        """From a loaded `LlamaForCausalLM` (tests, and a model already in memory)."""
        return cls(LlamaShape.from_config(model.config.to_dict()), model.state_dict(), **kw)

    def reset(self) -> None:
        # (layer, row, position, [K | V] features): one write and one read per layer and step.
        self.kv = torch.zeros((self.n_layer, self.max_rows, self.max_len, 2 * self.n_kv * self.hd), dtype=self.dtype,
                              device=self.device)

    def _rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.d,), w, self.eps)

    @torch.inference_mode()
    def hidden(self, tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Final-norm hidden state (B, d) at the last position, for tokens (B, T) fed to cache `rows` (B,)
        at positions start (B,) .. start+T-1. Every row of one call feeds the same number of tokens T.
        (`check` is there for the C forward's interface; this one always checks the length.)"""
        B, T = tokens.shape
        H, Hkv, hd = self.n_head, self.n_kv, self.hd
        QK, KV = (H + Hkv) * hd, Hkv * hd
        starts = start.tolist()  # host values pick the mask: no device sync when callers pass CPU tensors
        r = rows.tolist()
        if self.device.type != "cpu":
            tokens, rows, start = (t.to(self.device, non_blocking=True) for t in (tokens, rows, start))
        pos = start[:, None] + self._ar[:T]  # (B, T)
        L = max(starts) + T
        if L > self.max_len:
            raise ValueError(f"sequence longer than the model's {self.max_len} positions")
        cis = self.cis[pos][:, :, None]  # (B, T, 1, hd/2)
        # The attention mask: none when all rows are at one position (T=1) or all start fresh (causal).
        same = all(s == starts[0] for s in starts)
        causal, bias = False, None
        if same and starts[0] == 0:
            causal = T > 1
        elif not (same and T == 1):
            allowed = self._ar[:L][None, None, None, :] <= pos[:, None, :, None]  # (B, 1, T, L)
            bias = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device).masked_fill_(~allowed, float("-inf"))
        contiguous = r == list(range(r[0], r[0] + B))
        x = self.embed[tokens]  # (B, T, d)
        for li, ly in enumerate(self.layers):
            qkv = ly.qkv(self._rms(x, ly.ln1))  # (B, T, (H+2Hkv)·hd)
            qk = torch.view_as_complex(qkv[..., :QK].float().unflatten(-1, (H + Hkv, hd // 2, 2)))
            qk = torch.view_as_real(qk * cis).flatten(2).to(self.dtype)  # (B, T, (H+Hkv)·hd), rotated
            q = qk[..., : H * hd].unflatten(-1, (H, hd)).transpose(1, 2)  # (B, H, T, hd)
            cache = self.kv[li]  # (R, Tmax, 2·Hkv·hd)
            cache[rows[:, None], pos] = torch.cat([qk[..., H * hd :], qkv[..., QK:]], -1)
            ctx = cache[r[0] : r[0] + B, :L] if contiguous else cache[:, :L].index_select(0, rows)  # (B, L, 2KV)
            k = ctx[..., :KV].unflatten(-1, (Hkv, hd)).transpose(1, 2)  # (B, Hkv, L, hd)
            v = ctx[..., KV:].unflatten(-1, (Hkv, hd)).transpose(1, 2)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal,
                                                 enable_gqa=Hkv != H)  # (B, H, T, hd)
            x = ly.o.add(att.transpose(1, 2).reshape(B, T, H * hd), x)
            h = self._rms(x, ly.ln2)
            x = ly.down.add(ly.up.mul(h, ly.gate.silu(h)), x)
        return self._rms(x[:, -1], self.norm)  # (B, d)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, V) float32 logits from `hidden`'s output."""
        with torch.inference_mode():
            return self.lm_head(h).float()

    def forward(self, tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) at the last position (see `hidden`)."""
        return self.logits(self.hidden(tokens, rows, start))
