"""The decode step in C (core/kernels/decode.c), compiled on first use and called through ctypes.

`CFastLlama` has the interface of `core.fastlm.FastLlama` (rows of one KV cache, each at its own
position) and is what the engine uses when a C compiler is there; `load_kernel()` returns None
otherwise (or with SHIREN_NO_C_KERNEL=1) and the engine falls back to the PyTorch forward.

The shared library is built with the system compiler (`cc -O3 -march=native`) into a cache dir
(SHIREN_KERNEL_DIR, default the user cache dir), named by a hash of the source, the compiler
flags and the CPU, written atomically, so a second process just loads it (~1 ms).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

import torch

from core.fastlm import FastLlama, LlamaShape

CFLAGS = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-fopenmp", "-fPIC", "-shared", "-std=c11"]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


class _Dims(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int) for n in ("n_layer", "n_head", "n_kv", "hd", "d", "ff", "vocab", "max_rows",
                                           "max_len", "wbf16", "head_bf16")] + [("eps", ctypes.c_float)]


def kernel_dir() -> Path:
    env = os.environ.get("SHIREN_KERNEL_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("shiren")) / "kernels"


def _cpu_id() -> str:
    try:
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _build(src: Path, out: Path) -> None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise OSError("no C compiler")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        subprocess.run([cc, *CFLAGS, str(src), "-o", tmp, "-lm"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, out)  # atomic: a concurrent process sees the old name or the whole library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_kernel() -> ctypes.CDLL | None:
    """The compiled decode kernel, or None where it cannot be built here."""
    global _lib, _tried
    if _tried:  # read every sampling step: no lock once decided
        return _lib
    with _lock:
        if _tried:
            return _lib
        _tried = True
        if os.environ.get("SHIREN_NO_C_KERNEL") == "1":
            return None
        try:
            src = Path(str(resources.files("core").joinpath("kernels/decode.c")))
            key = hashlib.sha256(src.read_bytes() + " ".join(CFLAGS).encode() + _cpu_id().encode()).hexdigest()[:16]
            so = kernel_dir() / f"decode-{key}.so"
            if not so.exists():
                _build(src, so)
            lib = ctypes.CDLL(str(so))
        except (OSError, subprocess.SubprocessError) as e:
            detail = getattr(e, "stderr", b"") or b""
            logging.getLogger("shiren").warning(
                "decode kernel unavailable (%s%s); using the slower PyTorch decoder", e,
                (": " + detail.decode(errors="replace")[-300:]) if detail else "")
            return None
        lib.shiren_isa.restype = ctypes.c_char_p
        lib.shiren_isa.argtypes = []
        lib.shiren_set_threads.restype = None
        lib.shiren_set_threads.argtypes = [ctypes.c_int]
        lib.shiren_max_threads.restype = ctypes.c_int
        lib.shiren_max_threads.argtypes = []
        lib.shiren_hidden.restype = ctypes.c_int
        lib.shiren_hidden.argtypes = [ctypes.POINTER(_Dims), ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.shiren_logits.restype = None
        lib.shiren_logits.argtypes = [ctypes.POINTER(_Dims), ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                      ctypes.c_void_p]
        P, INT, U8 = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
        lib.shiren_mask.restype = lib.shiren_update.restype = lib.shiren_sample.restype = None
        lib.shiren_mask.argtypes = [P, INT, INT, U8, U8, U8, U8, U8, U8, P, INT, U8]
        lib.shiren_update.argtypes = [P, INT, INT, U8, U8, P, U8, U8, U8, U8]
        lib.shiren_sample.argtypes = [INT, INT, P, U8, P, P, P, P, P]
        _lib = lib
        return lib


class _Vocab(ctypes.Structure):
    _fields_ = [("V", ctypes.c_int), ("G", ctypes.c_int), ("content", ctypes.c_void_p), ("ping", ctypes.c_void_p),
                ("ze", ctypes.c_void_p), ("cls_ptr", ctypes.c_void_p), ("cls_idx", ctypes.c_void_p),
                ("cls_tone", ctypes.c_void_p), ("grp_ptr", ctypes.c_void_p), ("grp_idx", ctypes.c_void_p),
                ("grp_tone", ctypes.c_void_p)]


def _ptr(t: torch.Tensor) -> int:
    if not t.is_contiguous():
        raise ValueError("the kernel needs contiguous tensors")
    return t.data_ptr()


class CConstraints:
    """core.engine's mask / update rules over the C kernel (same semantics as its torch code)."""

    def __init__(self, lib: ctypes.CDLL, content: torch.Tensor, ping: torch.Tensor, ze: torch.Tensor,
                 class_p: torch.Tensor, class_z: torch.Tensor):
        """class_p / class_z (G, V): membership of each token in each rhyme class through a 平 / 仄 reading."""
        self.lib = lib
        V = content.shape[0]
        bits = class_p.bool().to(torch.uint8) | (class_z.bool().to(torch.uint8) << 1)  # (G, V): 1 平, 2 仄

        def csr(m: torch.Tensor) -> list[torch.Tensor]:  # (n, k) bits → row pointers, column indices, bits
            nz = m.nonzero()
            ptr = torch.cat([torch.zeros(1, dtype=torch.long), (m > 0).sum(1).cumsum(0)]).to(torch.int32)
            return [ptr.contiguous(), nz[:, 1].to(torch.int32).contiguous(), m[nz[:, 0], nz[:, 1]].contiguous()]

        self._keep = [content.bool().contiguous(), ping.bool().contiguous(), ze.bool().contiguous(),
                      *csr(bits.t().contiguous()), *csr(bits)]
        self._vocab = _Vocab(V, bits.shape[0], *[t.data_ptr() for t in self._keep])

    def mask(self, marks: torch.Tensor, rhyme: torch.Tensor, alive: torch.Tensor, groups: torch.Tensor,
             used: torch.Tensor, failed: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        b, NT = alive.shape
        out = torch.empty((b, self._vocab.V), dtype=torch.bool)
        if fixed.dtype != torch.int64 or not fixed.is_contiguous():
            fixed = fixed.to(torch.int64).contiguous()
        self.lib.shiren_mask(ctypes.byref(self._vocab), b, NT, _ptr(marks), _ptr(rhyme), _ptr(alive), _ptr(groups),
                             _ptr(used), _ptr(failed), fixed.data_ptr(), fixed.numel(), out.data_ptr())
        return out

    def update(self, marks: torch.Tensor, rhyme: torch.Tensor, tok: torch.Tensor, alive: torch.Tensor,
               groups: torch.Tensor, used: torch.Tensor, failed: torch.Tensor) -> None:
        b, NT = alive.shape
        if tok.dtype != torch.int64 or not tok.is_contiguous():
            tok = tok.to(torch.int64).contiguous()
        self.lib.shiren_update(ctypes.byref(self._vocab), b, NT, _ptr(marks), _ptr(rhyme), tok.data_ptr(),
                               _ptr(alive), _ptr(groups), _ptr(used), _ptr(failed))


def c_sample(lib: ctypes.CDLL, logits: torch.Tensor, mask: torch.Tensor, temperature: float | torch.Tensor,
             top_p: float | torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, full-vocabulary log-probs) — see shiren_sample in decode.c. temperature and top_p:
    one value for all rows, or one per row (B,)."""
    if logits.dtype != torch.float32 or not logits.is_contiguous():
        logits = logits.float().contiguous()
    if mask.dtype != torch.bool or not mask.is_contiguous():
        mask = mask.bool().contiguous()
    if u.dtype != torch.float64 or not u.is_contiguous():
        u = u.to(torch.float64).contiguous()
    b, V = logits.shape
    temps = torch.full((b,), float(temperature), dtype=torch.float64) if not isinstance(temperature, torch.Tensor) \
        else temperature.to(torch.float64).contiguous()
    tops = torch.full((b,), float(top_p), dtype=torch.float64) if not isinstance(top_p, torch.Tensor) \
        else top_p.to(torch.float64).contiguous()
    tok = torch.empty(b, dtype=torch.int64)
    logp = torch.empty(b, dtype=torch.float32)
    lib.shiren_sample(b, V, logits.data_ptr(), mask.data_ptr(), temps.data_ptr(), tops.data_ptr(), u.data_ptr(),
                      tok.data_ptr(), logp.data_ptr())
    return tok, logp


def panels(w: torch.Tensor, dtype: torch.dtype, width: int = 32) -> torch.Tensor:
    """A (out, in) weight as the kernel reads it: (ceil(out/32), in, 32), each panel contiguous."""
    out, n_in = w.shape
    padded = torch.zeros(((out + width - 1) // width * width, n_in), dtype=dtype)
    padded[:out] = w.to(dtype)
    return padded.view(-1, width, n_in).transpose(1, 2).contiguous()  # (P, in, 32)


def panels_q8(q: torch.Tensor, scale: torch.Tensor, width: int = 32) -> torch.Tensor:
    """int8 codes (out, in) and row scales (out,) as the kernel reads them (decode.c: q8_scales): the
    int8 panels (ceil(out/32), in, 32), then at the next 64-byte boundary the scales, zero-padded."""
    out = q.shape[0]
    p = (out + width - 1) // width
    codes = panels(q, torch.int8, width).view(-1).view(torch.uint8)
    off = (codes.numel() + 63) // 64 * 64
    sc = torch.zeros(p * width, dtype=torch.float32)
    sc[:out] = scale
    buf = torch.zeros(off + sc.numel() * 4, dtype=torch.uint8)
    buf[: codes.numel()] = codes
    buf[off:] = sc.view(torch.uint8)
    return buf


def _lossless_bf16(ts: list[torch.Tensor]) -> bool:
    """Whether these weights are exactly representable in bf16 (the shipped base is saved in bf16)."""
    return all(torch.equal(t.to(torch.bfloat16).float(), t.float()) for t in ts)


class CFastLlama:
    """FastLlama's interface over the C kernel. Weights: bf16 when asked; with float32 asked, a group of
    weights (the embedding / output head, the layers) that is exactly bf16 — the shipped base is saved in
    bf16; only LoRA-merged matrices are not — is still stored in bf16: half the memory traffic, the
    same numbers."""

    def __init__(self, lib: ctypes.CDLL, shape: LlamaShape, state_dict: dict[str, torch.Tensor],
                 max_rows: int = 64, max_len: int | None = None, dtype: torch.dtype = torch.float32,
                 q8: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None):
        """`q8`: int8 codes and row scales (core.quant) of every layer projection, whose dequantized
        values `state_dict` holds: the layers then stream int8 (the same numbers)."""
        if dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"the C kernel takes float32 or bfloat16 weights, not {dtype}")
        self.lib, self.shape, self.dtype = lib, shape, dtype
        self.max_rows, self.max_len = max_rows, max_len or shape.block_size
        self.vocab_size, self.d = shape.vocab_size, shape.n_embd
        sd = {k.removeprefix("base_model.model."): v.detach() for k, v in state_dict.items()}
        head_w = sd["model.embed_tokens.weight"] if shape.tie_embeddings or "lm_head.weight" not in sd \
            else sd["lm_head.weight"]
        head_dtype = torch.bfloat16 if dtype == torch.bfloat16 or _lossless_bf16(
            [sd["model.embed_tokens.weight"], head_w]) else torch.float32
        layer_keys = [k for k in sd if k.startswith("model.layers.") and k.endswith("proj.weight")]
        q8 = {k.removeprefix("base_model.model."): v for k, v in (q8 or {}).items()}
        if q8 and set(layer_keys) <= set(q8):
            dtype = torch.int8
        elif dtype == torch.float32 and _lossless_bf16([sd[k] for k in layer_keys]):
            dtype = torch.bfloat16
        self.head_dtype, self.layer_dtype = head_dtype, dtype

        def cat(names: list[str]) -> torch.Tensor:
            """The kernel's panels of these (out, in) matrices stacked along out."""
            if dtype == torch.int8:
                return panels_q8(torch.cat([q8[n][0] for n in names], 0), torch.cat([q8[n][1] for n in names]))
            return panels(torch.cat([sd[n] for n in names], 0), dtype)

        def wt(name: str) -> torch.Tensor:
            return cat([name])

        def f32(name: str) -> torch.Tensor:
            return sd[name].float().contiguous()

        embed = sd["model.embed_tokens.weight"].to(head_dtype).contiguous()  # (V, d)
        keep = [embed, panels(head_w, head_dtype), f32("model.norm.weight")]
        hd = shape.head_dim
        inv = 1.0 / (shape.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = torch.outer(torch.arange(self.max_len, dtype=torch.float32), inv)  # (T, hd/2)
        keep += [freqs.cos().contiguous(), freqs.sin().contiguous()]
        # Not zeroed: a position is always written before any token attends to it, and untouched pages
        # of this 134 MB (64 rows x 256 positions) cache then never count against the process's memory.
        self.kv = torch.empty((shape.n_layer, max_rows, self.max_len, 2 * shape.n_kv_head * hd), dtype=torch.float32)
        keep.append(self.kv)
        for i in range(shape.n_layer):
            p = f"model.layers.{i}."
            qkv = cat([p + f"self_attn.{n}_proj.weight" for n in "qkv"])  # (out, in) stacked
            gu = cat([p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"])
            keep += [f32(p + "input_layernorm.weight"), qkv, wt(p + "self_attn.o_proj.weight"),
                     f32(p + "post_attention_layernorm.weight"), gu, wt(p + "mlp.down_proj.weight")]
        self._keep = keep  # the C side holds raw pointers into these
        self._ptrs = (ctypes.c_void_p * len(keep))(*[t.data_ptr() for t in keep])
        self._dims = _Dims(shape.n_layer, shape.n_head, shape.n_kv_head, hd, shape.n_embd, shape.intermediate,
                           shape.vocab_size, max_rows, self.max_len, {torch.float32: 0, torch.bfloat16: 1,
                                                                      torch.int8: 2}[dtype],
                           int(head_dtype == torch.bfloat16), shape.rms_eps)

    def reset(self) -> None:
        self.kv.zero_()

    def hidden(self, tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Final-norm hidden state (B, d) at the last position; see FastLlama.hidden. `check=False` skips
        the argument checks (six reductions, ~10% of a small step) for callers that build them right."""
        B, T = tokens.shape
        if check:
            self._check(tokens, rows, start)
        tokens, rows, start = (t if t.dtype == torch.int64 and t.is_contiguous() else t.to(torch.int64).contiguous()
                               for t in (tokens, rows, start))
        out = torch.empty((B, self.d), dtype=torch.float32)
        rc = self.lib.shiren_hidden(ctypes.byref(self._dims), self._ptrs, B, T, tokens.data_ptr(), rows.data_ptr(),
                                    start.data_ptr(), out.data_ptr())
        if rc != 0:
            raise MemoryError("the decode kernel ran out of memory")
        return out

    def _check(self, tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor) -> None:
        B, T = tokens.shape
        if T < 1 or B < 1 or rows.shape != (B,) or start.shape != (B,):
            raise ValueError(f"tokens (B, T) with T >= 1 and rows, start of shape (B,); got {tuple(tokens.shape)}, "
                             f"{tuple(rows.shape)}, {tuple(start.shape)}")
        if int(start.min()) < 0 or int(start.max()) + T > self.max_len:
            raise ValueError(f"sequence longer than the model's {self.max_len} positions (or a negative start)")
        if int(rows.min()) < 0 or int(rows.max()) >= self.max_rows:
            raise ValueError("cache row out of range")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size:
            raise ValueError(f"token id out of range (vocabulary of {self.vocab_size})")

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        if h.dtype != torch.float32 or not h.is_contiguous():
            h = h.float().contiguous()
        out = torch.empty((h.shape[0], self.vocab_size), dtype=torch.float32)
        self.lib.shiren_logits(ctypes.byref(self._dims), self._ptrs, h.shape[0], h.data_ptr(), out.data_ptr())
        return out

    def forward(self, tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        return self.logits(self.hidden(tokens, rows, start))


def fast_llama(shape: LlamaShape, state_dict: dict[str, torch.Tensor], **kw):
    """The C forward where it builds, else the PyTorch one."""
    lib = load_kernel()
    if lib is not None:
        return CFastLlama(lib, shape, state_dict, **kw)
    kw.pop("q8", None)  # the PyTorch forward computes with the dequantized values `state_dict` holds
    return FastLlama(shape, state_dict, **kw)
