"""The C decode kernel (core/kernels/decode.c through core.fastc) against its references: the HF model's
logits, core.generate.sample_torch, and core.engine's torch constraint rules."""

from __future__ import annotations

import copy
import math
import platform
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from core import fastc
from core.fastc import CFastLlama, c_sample, load_kernel
from core.fastlm import LlamaShape
from core.generate import sample_torch
from core.types import PoemRequest
from training.model import GPTConfig, build_model

LIB = load_kernel()
if LIB is None:
    pytest.skip("the C decode kernel did not build here (no C compiler, or SHIREN_NO_C_KERNEL=1); "
                "the engine falls back to core.fastlm and core.generate.sample_torch", allow_module_level=True)

# Measured (x86-64, AVX-512): float32 kernel vs HF float32 within 3e-7; bfloat16 kernel vs HF on the
# same bf16-rounded weights within 3e-7 (it rounds the weights and nothing else), while against the
# unrounded float32 model it is off by ~2e-3 (logits of scale ~1): so 1e-4 against the rounded
# reference is four hundred times the arithmetic noise and twenty times below the rounding effect.
ATOL = 1e-4


def _llama(seed: int = 0, **cfg) -> torch.nn.Module:
    """A tiny Llama with random (not all-ones) norm weights, so the kernel must apply them."""
    torch.manual_seed(seed)
    m = build_model(GPTConfig(arch="llama", **cfg)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
    return m


def _gqa_llama(seed: int = 0) -> torch.nn.Module:
    """Grouped-query attention (4 query heads over 2 KV heads, head_dim 12), ff 100, vocab 301 and an
    untied lm_head: o_proj (48), gate/up (200), down (48) and the head (301) end in a padded panel."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=301, hidden_size=48, intermediate_size=100, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=40,
                      rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=False)
    m = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape))
    return m


MODELS = {
    "d64": lambda: _llama(vocab_size=300, n_layer=2, n_head=4, n_embd=64, block_size=64),
    # head_dim 24, qkv 144 and vocab 301 wide: not multiples of the kernel's 32-column panels.
    "d48-vocab301": lambda: _llama(seed=1, vocab_size=301, n_layer=2, n_head=2, n_embd=48, block_size=48),
    "gqa-untied": _gqa_llama,
}


def _portable_cflags() -> list[str]:
    flags = [f for f in fastc.CFLAGS if not f.startswith("-march")]
    return flags + (["-mno-avx512f"] if platform.machine() in ("x86_64", "AMD64") else [])


def _avx2_cflags() -> list[str]:
    """-march=native without AVX-512: the AVX2+FMA kernels, as an AVX2-only CPU of this kind builds them."""
    return [*fastc.CFLAGS, "-mno-avx512f"]


def _cpu_has(flag: str) -> bool:
    try:
        return flag in open("/proc/cpuinfo", encoding="ascii", errors="replace").read().split()
    except OSError:
        return False


@pytest.fixture(scope="module", params=["native", "avx2", "portable"])
def lib(request):
    """The kernel as load_kernel builds it (AVX-512 path where the CPU has it), a build without AVX-512
    (the AVX2+FMA path of CPUs without it), and a build without -march=native, whose matmul is the
    scalar fallback every other machine runs."""
    if request.param == "native":
        yield LIB
        return
    if request.param == "avx2" and not (platform.machine() in ("x86_64", "AMD64") and _cpu_has("avx2")
                                        and _cpu_has("fma")):
        pytest.skip("no AVX2+FMA on this CPU")
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(fastc, "CFLAGS", _avx2_cflags() if request.param == "avx2" else _portable_cflags())
        mp.setattr(fastc, "_tried", False)
        mp.setattr(fastc, "_lib", None)
        portable = load_kernel()
    finally:
        mp.undo()  # later load_kernel() calls get the native build again
    if portable is None:
        pytest.skip(f"the {request.param} kernel build failed here")
    if request.param == "avx2":
        assert portable.shiren_isa() == b"avx2+fma"
    yield portable


def _bf16_rounded(m: torch.nn.Module, norms: bool = False) -> torch.nn.Module:
    """What the bfloat16 kernel computes with: embeddings and every matrix rounded to bf16, the norm
    weights (unless `norms`) and all arithmetic in float32."""
    r = copy.deepcopy(m)
    with torch.no_grad():
        for name, p in r.named_parameters():
            if norms or not name.endswith("norm.weight"):
                p.copy_(p.bfloat16().float())
    return r


def _check_against_hf(f: CFastLlama, ref_model: torch.nn.Module, atol: float) -> float:
    """test_engine.test_fastlm_matches_hf_logits, for the C forward. Returns the largest difference."""
    V = ref_model.config.vocab_size
    x = torch.randint(0, V, (3, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = ref_model(input_ids=x).logits
    worst = 0.0

    def close(a: torch.Tensor, b: torch.Tensor) -> None:
        nonlocal worst
        worst = max(worst, float((a - b).abs().max()))
        assert torch.allclose(a, b, rtol=0, atol=atol), float((a - b).abs().max())

    # Prefill, then one token at a time; rows not in order (4, 0, 7).
    rows, zero = torch.tensor([4, 0, 7]), torch.zeros(3, dtype=torch.long)
    close(f.forward(x[:, :5], rows, zero), ref[:, 4])
    for t in range(5, 12):
        close(f.forward(x[:, t : t + 1], rows, torch.full((3,), t)), ref[:, t])
    # Rows at different positions in one call, in non-contiguous order (2, 5, 6; then 6, 2).
    f.reset()
    f.forward(x[:1, :3], torch.tensor([5]), torch.tensor([0]))
    f.forward(x[1:2, :8], torch.tensor([2]), torch.tensor([0]))
    f.forward(x[2:3, :1], torch.tensor([6]), torch.tensor([0]))
    out = f.forward(torch.stack([x[1, 8:10], x[0, 3:5], x[2, 1:3]]), torch.tensor([2, 5, 6]),
                    torch.tensor([8, 3, 1]))  # two tokens each, three different starts
    close(out, torch.stack([ref[1, 9], ref[0, 4], ref[2, 2]]))
    out = f.forward(torch.stack([x[2, 3:4], x[1, 10:11]]), torch.tensor([6, 2]), torch.tensor([3, 10]))
    close(out, torch.stack([ref[2, 3], ref[1, 10]]))
    # hidden + logits is forward, and a reset cache starts over.
    f.reset()
    h = f.hidden(x[:, :4], torch.tensor([1, 3, 0]), torch.zeros(3, dtype=torch.long))
    assert h.shape == (3, ref_model.config.hidden_size)
    close(f.logits(h), ref[:, 3])
    return worst


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_matches_hf_logits(lib, name):
    m = MODELS[name]()
    shape = LlamaShape.from_config(m.config.to_dict())
    f = CFastLlama(lib, shape, m.state_dict(), max_rows=8)
    _check_against_hf(f, m, ATOL)


@pytest.mark.parametrize("name", list(MODELS))
def test_bfloat16_matches_hf_on_rounded_weights(lib, name):
    m = MODELS[name]()
    shape = LlamaShape.from_config(m.config.to_dict())
    f = CFastLlama(lib, shape, m.state_dict(), max_rows=8, dtype=torch.bfloat16)
    _check_against_hf(f, _bf16_rounded(m), ATOL)
    # Against the unrounded model only to bf16 rounding: the bf16 weights are really in use ...
    f.reset()
    x = torch.randint(0, shape.vocab_size, (2, 10), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ref = m(input_ids=x).logits[:, -1]
    diff = float((f.forward(x, torch.tensor([0, 1]), torch.zeros(2, dtype=torch.long)) - ref).abs().max())
    assert 3 * ATOL < diff < 2e-2, diff
    # ... and a bf16 state dict goes in as it is.
    f2 = CFastLlama(lib, shape, {k: v.bfloat16() for k, v in m.state_dict().items()}, max_rows=2,
                    dtype=torch.bfloat16)
    out2 = f2.forward(x, torch.tensor([0, 1]), torch.zeros(2, dtype=torch.long))
    with torch.no_grad():
        ref2 = _bf16_rounded(m, norms=True)(input_ids=x).logits[:, -1]  # its norm weights came in bf16
    assert torch.allclose(out2, ref2, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", list(MODELS))
def test_int8_matches_hf_on_dequantized_weights(lib, name):
    """Every build's int8 path (core.quant codes × row scales, scaled at the store) computes what the HF
    model computes with the dequantized weights; and the codes are really in use."""
    from core.quant import dequantize, is_layer_linear, quantize_rows

    m = MODELS[name]()
    shape = LlamaShape.from_config(m.config.to_dict())
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    q8 = {k: quantize_rows(v) for k, v in sd.items() if is_layer_linear(k)}
    deq = copy.deepcopy(m)
    with torch.no_grad():
        for k, p in deq.named_parameters():
            if k in q8:
                p.copy_(dequantize(*q8[k]))
    f = CFastLlama(lib, shape, {**sd, **{k: dequantize(*v) for k, v in q8.items()}}, max_rows=8, q8=q8)
    assert f.layer_dtype == torch.int8
    _check_against_hf(f, deq, ATOL)
    f.reset()
    x = torch.randint(0, shape.vocab_size, (2, 10), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ref = m(input_ids=x).logits[:, -1]
    diff = float((f.forward(x, torch.tensor([0, 1]), torch.zeros(2, dtype=torch.long)) - ref).abs().max())
    assert 3 * ATOL < diff < 5e-2, diff  # the quantization shows against the unquantized model


def test_float32_engine_stores_bf16_exact_weights_in_bf16():
    """The shipped base is saved in bf16: asked for float32, the kernel keeps such weights in bf16 (half
    the memory traffic) and computes exactly what the float32 weights give; merged LoRA matrices,
    which are not bf16-exact, stay float32."""
    m = _bf16_rounded(MODELS["d64"](), norms=True)  # every weight exactly representable in bf16
    shape = LlamaShape.from_config(m.config.to_dict())
    f = CFastLlama(LIB, shape, m.state_dict(), max_rows=8)
    assert f.head_dtype == torch.bfloat16 and f.layer_dtype == torch.bfloat16
    _check_against_hf(f, m, ATOL)
    sd = m.state_dict()
    sd["model.layers.0.mlp.up_proj.weight"] = sd["model.layers.0.mlp.up_proj.weight"] + 1e-4  # like a LoRA merge
    g = CFastLlama(LIB, shape, sd, max_rows=2)
    assert g.head_dtype == torch.bfloat16 and g.layer_dtype == torch.float32


def test_peft_prefixed_state_dict_and_bad_dtype():
    m = MODELS["d64"]()
    shape = LlamaShape.from_config(m.config.to_dict())
    sd = {"base_model.model." + k: v for k, v in m.state_dict().items()}
    f = CFastLlama(LIB, shape, sd, max_rows=2)
    x = torch.randint(0, 300, (1, 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = m(input_ids=x).logits[:, -1]
    assert torch.allclose(f.forward(x, torch.tensor([1]), torch.tensor([0])), ref, atol=ATOL)
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        CFastLlama(LIB, shape, m.state_dict(), dtype=torch.float16)


def test_too_long_and_bad_rows_raise():
    m = MODELS["d64"]()
    shape = LlamaShape.from_config(m.config.to_dict())
    f = CFastLlama(LIB, shape, m.state_dict(), max_rows=4, max_len=16)
    one = torch.zeros((1, 1), dtype=torch.long)
    with pytest.raises(ValueError, match="longer than the model's 16 positions"):
        f.forward(torch.zeros((1, 17), dtype=torch.long), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="longer than the model's 16 positions"):
        f.forward(one, torch.tensor([0]), torch.tensor([16]))
    with pytest.raises(ValueError, match="longer than the model's 16 positions"):  # any row too far
        f.forward(torch.zeros((2, 3), dtype=torch.long), torch.tensor([0, 1]), torch.tensor([2, 14]))
    with pytest.raises(ValueError, match="cache row out of range"):
        f.forward(one, torch.tensor([4]), torch.tensor([0]))
    with pytest.raises(ValueError, match="cache row out of range"):
        f.forward(one, torch.tensor([-1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="cache row out of range"):
        f.forward(torch.zeros((2, 1), dtype=torch.long), torch.tensor([0, 9]), torch.tensor([0, 0]))
    # Shapes that do not line up, negative positions, empty feeds and unknown tokens: a clear error,
    # never a read outside the cache.
    with pytest.raises(ValueError, match="rows, start of shape"):
        f.forward(torch.zeros((2, 1), dtype=torch.long), torch.tensor([0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="T >= 1"):
        f.forward(torch.zeros((1, 0), dtype=torch.long), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="negative start"):
        f.forward(one, torch.tensor([0]), torch.tensor([-1]))
    with pytest.raises(ValueError, match="token id out of range"):
        f.forward(torch.full((1, 1), 300), torch.tensor([0]), torch.tensor([0]))
    # The last position that fits still works, and the block size is the default limit.
    assert f.forward(torch.zeros((1, 16), dtype=torch.long), torch.tensor([3]), torch.tensor([0])).shape == (1, 300)
    g = CFastLlama(LIB, shape, m.state_dict(), max_rows=1)
    with pytest.raises(ValueError, match="longer than the model's 64 positions"):
        g.forward(one, torch.tensor([0]), torch.tensor([64]))


# ---- sampling -------------------------------------------------------------------------------------


def _sample_cases(n: int = 200):
    """(logits (B, V), mask, temperature, top_p, u): random, tied, single-token and edge cases."""
    g = torch.Generator().manual_seed(1234)
    temps, tops = [1.0, 0.8, 0.5, 1.3, 0.1], [1.0, 0.95, 0.9, 0.5, 0.3, 0.05]
    for i in range(n):
        B = 1 + i % 5
        V = [7, 50, 301, 1000][i % 4]
        logits = torch.randn((B, V), generator=g) * [0.5, 2.0, 4.0][i % 3]
        if i % 4 == 1:
            logits = (logits * 2).round() / 2  # heavy ties
        if i % 7 == 3:
            logits = logits.round()  # heavier ties
        mask = torch.rand((B, V), generator=g) < [0.5, 0.05, 0.9][i % 3]
        if i % 6 == 0:
            mask[0] = False
            mask[0, int(torch.randint(0, V, (1,), generator=g))] = True  # a single allowed token
        mask[~mask.any(1), 0] = True
        u = torch.rand(B, generator=g, dtype=torch.float64)
        if i % 10 == 9:
            u[0] = 0.0
        yield logits, mask, temps[i % 5], tops[(i // 5) % 6], u


def _sample_agree(logits, mask, temperature, top_p, u):
    tok_c, lp_c = c_sample(LIB, logits, mask, temperature, top_p, u)
    tok_t, lp_t = sample_torch(logits, mask, temperature, top_p, u)
    assert torch.equal(tok_c, tok_t), (tok_c, tok_t, temperature, top_p, u)
    assert bool(mask.gather(1, tok_c[:, None]).all())
    want = torch.log_softmax(logits.double(), -1).gather(1, tok_c[:, None]).squeeze(1)
    assert torch.allclose(lp_c.double(), want, rtol=0, atol=1e-4), (lp_c, want)
    assert torch.allclose(lp_t.double(), want, rtol=0, atol=1e-4)


def test_c_sample_equals_sample_torch():
    n = 0
    for case in _sample_cases(200):
        _sample_agree(*case)
        n += case[0].shape[0]
    assert n > 500


def test_c_sample_edge_cases():
    V = 40
    g = torch.Generator().manual_seed(7)
    logits = torch.randn((4, V), generator=g)
    only = torch.zeros((4, V), dtype=torch.bool)
    only[torch.arange(4), torch.tensor([0, 39, 17, 17])] = True
    for top_p in (1.0, 0.9, 0.01):
        for u in (0.0, 0.5, 1.0 - 1e-12):
            tok, _ = c_sample(LIB, logits, only, 0.8, top_p, torch.full((4,), u, dtype=torch.float64))
            assert tok.tolist() == [0, 39, 17, 17]
            _sample_agree(logits, only, 0.8, top_p, torch.full((4,), u, dtype=torch.float64))
    # All-equal logits: ties go to the lower id first, so u walks the allowed ids in order.
    flat = torch.zeros((5, V))
    mask = torch.zeros((5, V), dtype=torch.bool)
    mask[:, [3, 8, 9, 30]] = True
    u = torch.tensor([0.0, 0.26, 0.51, 0.76, 0.999], dtype=torch.float64)
    for top_p in (1.0, 0.99):
        tok, _ = c_sample(LIB, flat, mask, 1.0, top_p, u)
        assert tok.tolist() == [3, 8, 9, 30, 30]
        _sample_agree(flat, mask, 1.0, top_p, u)
    # A tiny nucleus keeps the single most likely allowed token, whatever u is.
    x = torch.randn((1, V), generator=g).expand(6, V).contiguous()
    m = torch.rand((6, V), generator=g) < 0.5
    m[:, 0] = True
    best = x.masked_fill(~m, -math.inf).argmax(1)
    tok, _ = c_sample(LIB, x, m, 1.0, 1e-6, torch.linspace(0, 0.999, 6, dtype=torch.float64))
    assert torch.equal(tok, best)
    # Large logit ranges and a low temperature: no overflow, the masked argmax wins.
    big = torch.randn((3, V), generator=g) * 80
    allm = torch.ones((3, V), dtype=torch.bool)
    tok, lp = c_sample(LIB, big, allm, 0.05, 0.95, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    assert torch.equal(tok, big.argmax(1)) and bool(torch.isfinite(lp).all())
    _sample_agree(big, allm, 0.05, 0.95, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))


def test_c_sample_ties_around_the_nucleus_boundary():
    """Few distinct probabilities, many equal ones: the nucleus boundary falls inside a run of ties.
    top_p values that are exact in float32 here; test_c_sample_nucleus_boundary_on_exact_ties covers others."""
    g = torch.Generator().manual_seed(21)
    for i in range(300):
        V = int(torch.randint(2, 41, (1,), generator=g))
        logits = torch.randint(-3, 2, (4, V), generator=g).float() * [0.5, 1.0, 0.25][i % 3]
        mask = torch.rand((4, V), generator=g) < 0.6
        mask[~mask.any(1), V - 1] = True
        top_p = float(torch.empty(1).uniform_(0.05, 1.0, generator=g).float())
        u = torch.rand(4, generator=g, dtype=torch.float64)
        u[0], u[1] = 0.0, 1.0 - 1e-12
        _sample_agree(logits, mask, [1.0, 0.7][i % 2], top_p, u)
    # Exactly k of n equal tokens in the nucleus, for every k: u near 1 picks the k-th lowest id.
    n = 8
    logits = torch.zeros((1, 20))
    mask = torch.zeros((1, 20), dtype=torch.bool)
    ids = [1, 4, 5, 9, 12, 13, 17, 19]
    mask[0, ids] = True
    for k in range(1, n + 1):
        top_p = (k - 0.5) / n  # float32-exact; the mass before the k-th token is (k-1)/n < top_p
        for u, want in ((0.0, ids[0]), (1.0 - 1e-9, ids[k - 1])):
            tok, _ = c_sample(LIB, logits, mask, 1.0, top_p, torch.tensor([u], dtype=torch.float64))
            assert tok.tolist() == [want], (k, u)
            _sample_agree(logits, mask, 1.0, top_p, torch.tensor([u], dtype=torch.float64))


def test_c_sample_nucleus_boundary_on_exact_ties():
    # Five allowed tokens with equal logits: each holds 1/5 of the mass. With top_p = 0.6 the fourth one
    # has exactly 0.6 before it, which is not < 0.6, so the documented rule keeps three tokens.
    logits = torch.zeros((1, 10))
    mask = torch.zeros((1, 10), dtype=torch.bool)
    mask[0, :5] = True
    u = torch.tensor([0.99], dtype=torch.float64)  # the last kept token
    tok_t, _ = sample_torch(logits, mask, 1.0, 0.6, u)
    assert tok_t.tolist() == [2]
    tok_c, _ = c_sample(LIB, logits, mask, 1.0, 0.6, u)
    assert tok_c.tolist() == [2]


def _nucleus_probs(logits: torch.Tensor, mask: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    p = torch.softmax((logits.double() / temperature).masked_fill(~mask, -math.inf), -1)
    sp, idx = p.sort(descending=True, stable=True)
    keep = (sp.cumsum(-1) - sp) < top_p
    out = torch.zeros_like(p)
    out[idx[keep]] = sp[keep]
    return out / out.sum()


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.8, 0.9), (1.5, 0.6)])
def test_sampling_frequencies_follow_the_nucleus(temperature, top_p):
    V, N = 30, 20000
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(V, generator=g) * 0.6
    mask = torch.rand(V, generator=g) < 0.7
    want = _nucleus_probs(logits, mask, temperature, top_p)
    u = torch.rand(N, generator=g, dtype=torch.float64)
    L, M = logits.expand(N, V).contiguous(), mask.expand(N, V).contiguous()
    for sampler in (lambda: c_sample(LIB, L, M, temperature, top_p, u), lambda: sample_torch(L, M, temperature, top_p, u)):
        tok, logp = sampler()
        freq = torch.bincount(tok, minlength=V).double() / N
        assert float((freq - want).abs().max()) < 0.02
        assert int(freq[want == 0].count_nonzero()) == 0  # never outside the nucleus (or the mask)
        assert torch.allclose(logp.double(), torch.log_softmax(logits.double(), -1)[tok], atol=1e-4)
    if top_p < 1:
        assert int((want > 0).sum()) < int(mask.sum())  # the nucleus did cut something


# ---- constraints ----------------------------------------------------------------------------------

REQS = [
    PoemRequest(form="五绝", seed=11),
    PoemRequest(form="七绝", acrostic="春江花月", seed=12),
    PoemRequest(form="五律", first_line="春风拂柳绿", seed=13),
    PoemRequest(form="七律", keywords=("明月",), title="中秋", seed=14, n=2),
    PoemRequest(form="词", cipai="浣溪沙", seed=15),
]


@pytest.fixture(scope="module")
def poet():
    from core.testing import tiny_poet

    p = tiny_poet(seed=0)
    assert p.engine is not None and p.engine.ev.c is not None, "the C constraints should be on here"
    yield p
    p.close()


def _state(job) -> list[torch.Tensor]:
    return [t.clone() for t in (job.alive, job.groups, job.used, job.failed)]


def _set_state(job, state: list[torch.Tensor]) -> None:
    job.alive, job.groups, job.used, job.failed = [t.clone() for t in state]


def _torch_rules(ev, fn, *args):
    c, ev.c = ev.c, None
    try:
        return fn(*args)
    finally:
        ev.c = c


def _assert_same_state(a: list[torch.Tensor], b: list[torch.Tensor], what: str) -> None:
    for name, x, y in zip(("alive", "groups", "used", "failed"), a, b, strict=True):
        assert torch.equal(x, y), f"{what}: {name} differs"


@contextmanager
def _lockstep(poet):
    """Run Engine._mask and _update both ways at every step and check they agree; the C result goes on."""
    from core.engine import Engine

    eng, ev = poet.engine, poet.engine.ev
    seen = {"mask": 0, "update": 0}

    def mask(job):
        before = _state(job)
        m_t = _torch_rules(ev, Engine._mask, eng, job)
        after_t = _state(job)
        _set_state(job, before)
        m_c = Engine._mask(eng, job)
        assert torch.equal(m_c, m_t), f"mask differs at slot {job.slot}"
        _assert_same_state(_state(job), after_t, f"mask at slot {job.slot}")
        seen["mask"] += 1
        return m_c

    def update(job, tok):
        before = _state(job)
        _torch_rules(ev, Engine._update, eng, job, tok)
        after_t = _state(job)
        _set_state(job, before)
        Engine._update(eng, job, tok)
        _assert_same_state(_state(job), after_t, f"update at slot {job.slot}")
        seen["update"] += 1

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eng, "_mask", mask)
        mp.setattr(eng, "_update", update)
        yield seen


@pytest.mark.parametrize("req", REQS, ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_c_constraints_equal_torch_rules_over_generations(poet, req):
    ev = poet.engine.ev
    c = ev.c
    texts_c = [p.text for p in poet.write(req)]
    with _lockstep(poet) as seen:
        texts_lock = [p.text for p in poet.write(req)]
    assert seen["mask"] > 0 and seen["update"] >= seen["mask"]
    try:
        ev.c = None
        texts_torch = [p.text for p in poet.write(req)]
    finally:
        ev.c = c
    assert len(texts_c) == req.n
    assert texts_c == texts_torch == texts_lock


def test_c_constraints_equal_torch_rules_on_random_states(poet):
    """Random rows (including dead ends, exhausted rows and rhyme-class failures) through both rule sets."""
    from core.engine import Engine

    eng, ev = poet.engine, poet.engine.ev
    V, G = ev.vi.size, ev.n_classes
    content_ids = ev.content.nonzero().flatten()
    g = torch.Generator().manual_seed(3)
    events = {"dead_end": 0, "failed_mask": 0, "failed_update": 0}
    for it in range(60):
        b, NT = 8, int(torch.randint(1, 9, (1,), generator=g))
        marks = torch.zeros((1, NT, 3), dtype=torch.bool)
        marks[0, torch.arange(NT), torch.randint(0, 3, (NT,), generator=g)] = True
        rhyme = torch.rand((1, NT), generator=g) < 0.5
        fixed = content_ids[torch.randint(0, len(content_ids), (int(torch.randint(0, 4, (1,), generator=g)),),
                                          generator=g)].unique()
        forced = torch.cat([fixed, torch.tensor([-1, -1, ev.vi.char_id("，")])])
        job = SimpleNamespace(slot=0, pt=SimpleNamespace(marks=marks, rhyme=rhyme, fixed_chars=fixed, forced=forced))
        job.alive = torch.rand((b, NT), generator=g) < 0.6
        job.alive[0] = True
        job.groups = torch.rand((b, G), generator=g) < [0.02, 0.2, 0.6][it % 3]
        job.groups[1] = False  # no rhyme class left: rhyming templates have no character
        job.used = torch.zeros((b, V), dtype=torch.bool)
        job.used[:, fixed] = True
        job.used |= torch.rand((b, V), generator=g) < 0.3
        job.used[2] = True  # everything used: a dead end, reset to the fixed chars
        job.failed = torch.zeros(b, dtype=torch.bool)
        job.failed[3] = it % 2 == 0
        for step in range(3):
            before = _state(job)
            m_t = _torch_rules(ev, Engine._mask, eng, job)
            after_t = _state(job)
            _set_state(job, before)
            m_c = Engine._mask(eng, job)
            assert torch.equal(m_c, m_t), (it, step)
            _assert_same_state(_state(job), after_t, f"mask {it}/{step}")
            events["dead_end"] += int((before[2] != after_t[2]).any(1).sum())
            events["failed_mask"] += int((after_t[3] & ~before[3]).sum())
            # Tokens: a char the mask allows (as the engine does), or any content char (fixed chars).
            allowed = m_c.float() + 1e-9 * ev.content.float()
            tok = torch.multinomial(allowed, 1, generator=g).flatten()
            if step == 2:
                tok[:4] = content_ids[torch.randint(0, len(content_ids), (4,), generator=g)]
            before = _state(job)
            _torch_rules(ev, Engine._update, eng, job, tok)
            after_t = _state(job)
            _set_state(job, before)
            Engine._update(eng, job, tok)
            _assert_same_state(_state(job), after_t, f"update {it}/{step}")
            events["failed_update"] += int((after_t[3] & ~before[3]).sum())
            job.slot = 0
            marks[0] = torch.zeros((NT, 3), dtype=torch.bool).index_put_(
                (torch.arange(NT), torch.randint(0, 3, (NT,), generator=g)), torch.tensor(True))
            rhyme[0] = torch.rand(NT, generator=g) < 0.5
    assert all(n > 0 for n in events.values()), events


def test_unbuildable_kernel_falls_back_with_a_warning(tmp_path, monkeypatch, caplog):
    """A kernel dir that cannot be written (here: a file) or a missing compiler: no kernel, one warning,
    and the poet still writes (through the PyTorch decoder)."""
    from core.testing import tiny_poet

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setattr(fastc, "_tried", False)
    monkeypatch.setattr(fastc, "_lib", None)
    monkeypatch.setenv("SHIREN_KERNEL_DIR", str(blocker / "kernels"))
    with caplog.at_level("WARNING", logger="shiren"):
        assert fastc.load_kernel() is None
    assert "decode kernel unavailable" in caplog.text and "PyTorch decoder" in caplog.text
    poet = tiny_poet(seed=0)
    try:
        assert poet.engine.ev.c is None and type(poet.engine.fast).__name__ == "FastLlama"
        assert poet.write(PoemRequest(form="五绝", seed=1))[0].text
    finally:
        poet.close()
    monkeypatch.setattr(fastc, "_tried", False)
    monkeypatch.setenv("SHIREN_KERNEL_DIR", str(tmp_path / "k"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with caplog.at_level("WARNING", logger="shiren"):
        assert fastc.load_kernel() is None


def test_results_do_not_depend_on_the_thread_count():
    """Each output is computed by one thread in a fixed order: 1 or 2 threads give bitwise the same
    logits (so the same poems for a seed on any machine setting)."""
    m = MODELS["d64"]()
    shape = LlamaShape.from_config(m.config.to_dict())
    x = torch.randint(0, 300, (8, 12), generator=torch.Generator().manual_seed(5))
    outs = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)  # the kernel's OpenMP shares torch's thread setting
            f = CFastLlama(LIB, shape, m.state_dict(), max_rows=8)
            outs.append(f.forward(x, torch.arange(8), torch.zeros(8, dtype=torch.long)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])
