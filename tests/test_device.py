"""The engine's PyTorch path on each device: the code a GPU runs, tested on the CPU here and on CUDA
where there is one (`scripts/gpu_check.sh`; the CUDA cases skip cleanly without it).

Devices: "cpu" (the torch forward with oneDNN GEMMs, the torch rules: today's path without a C
compiler), "cpu-plain" (the same with the plain matmuls a GPU runs: the CUDA code path, on the CPU),
"cuda" (the same code on the GPU, built the way `Poet` builds it there).

Where the numerics may differ: on CUDA the matmuls (cuBLAS), attention (SDPA kernels) and the
sampler's cumulative sums add in other orders than on the CPU. Everything stays float32 and TF32 stays
off (torch's default for matmuls), so logits agree with the CPU's to ~1e-5, but a sampled character
can still flip where a uniform or a nucleus boundary falls inside that difference, and cuBLAS may pick
another kernel for another batch size. So on CUDA a seed's poems may differ from the reference
path's, and a request batched with others may differ from the same request alone; what is asserted
there is that the masks and constraint state are bitwise those of the CPU rules, that logits agree to
tolerance, that a seed repeats on the device, and that every guarantee holds on every poem. On the
CPU the poems equal the reference path's exactly. (`shiren bench` reports how many agree on a GPU.)
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from request_support import BASE_REQUESTS, WITH_REPEATS
from test_generate import assert_guarantees

from core.device import DeviceError, canonical, resolve_device
from core.engine import Engine, EngineVocab
from core.fastlm import FastLlama
from core.infill import RuleReplay
from core.poet import Poet
from core.testing import tiny_critic, tiny_model_and_tokenizer
from core.types import PoemRequest
from training.model import GPTConfig, build_model

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device (torch.cuda.is_available() is False): "
                                                        "the GPU path is tested on a GPU machine (scripts/gpu_check.sh)")
CUDA = pytest.param("cuda", marks=[requires_cuda, pytest.mark.cuda], id="cuda")
DEVICES = ["cpu", "cpu-plain", CUDA]

REQS = [*BASE_REQUESTS, WITH_REPEATS]


def _exact(device: str) -> bool:
    """Whether this device computes the reference path's numbers (see the module docstring)."""
    return not device.startswith("cuda")


@pytest.fixture(scope="module")
def model_tok():
    return tiny_model_and_tokenizer(seed=0)


def torch_poet(model, tok, device: str) -> Poet:
    """A poet whose engine is the PyTorch path on `device` (on CUDA: exactly what Poet builds there)."""
    if device == "cuda":
        poet = Poet(model, tok, version="tiny-0", device="cuda")
        assert poet.engine.fast.kv.is_cuda and poet.engine.ev.content.is_cuda and poet.engine.ev.c is None
        return poet
    poet = Poet(model, tok, version="tiny-0", device="cpu")
    poet.engine = Engine(FastLlama.from_hf(model, max_rows=64, fused=device == "cpu"),
                         EngineVocab(poet.vi, kernel=False))
    return poet


@pytest.fixture(scope="module", params=DEVICES)
def dpoet(request, model_tok):
    p = torch_poet(*model_tok, request.param)
    p.device_name = request.param
    yield p
    p.close()


@pytest.mark.parametrize("device", DEVICES)
def test_forward_matches_hf_logits(device):
    """Prefill (causal), one-token steps, and rows at different positions in one call (the explicit mask)."""
    torch.manual_seed(0)
    m = build_model(GPTConfig(arch="llama", vocab_size=300, n_layer=2, n_head=4, n_embd=64, block_size=64)).eval()
    f = FastLlama.from_hf(m, max_rows=8, device="cuda" if device == "cuda" else "cpu", fused=device == "cpu")
    x = torch.randint(0, 300, (3, 12))
    rows, zero = torch.tensor([4, 0, 7]), torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        ref = m(input_ids=x).logits
    out = f.forward(x[:, :5], rows, zero)
    assert out.device == f.device
    assert torch.allclose(out.cpu(), ref[:, 4], atol=1e-4)
    for t in range(5, 12):
        out = f.forward(x[:, t : t + 1], rows, torch.full((3,), t))
        assert torch.allclose(out.cpu(), ref[:, t], atol=1e-4)
    f.reset()
    f.forward(x[:1, :3], torch.tensor([1]), torch.tensor([0]))
    f.forward(x[1:2, :8], torch.tensor([2]), torch.tensor([0]))
    both = f.forward(torch.stack([x[0, 3:4], x[1, 8:9]]), torch.tensor([1, 2]), torch.tensor([3, 8])).cpu()
    assert torch.allclose(both[0], ref[0, 3], atol=1e-4) and torch.allclose(both[1], ref[1, 8], atol=1e-4)


@pytest.mark.parametrize("req", REQS, ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_torch_path_same_poems_and_guarantees(dpoet, req):
    fast = dpoet.write(req)
    assert len(fast) == req.n
    for p in fast:
        assert_guarantees(dpoet.validate(req), p.text)
    assert [p.text for p in dpoet.write(req)] == [p.text for p in fast]  # a seed repeats on the device
    if _exact(dpoet.device_name):
        assert [p.text for p in fast] == [p.text for p in dpoet.write_reference(req)]


def _cpu_twin(job) -> SimpleNamespace:
    """The job's plan tensors and constraint state, copied to the CPU."""
    return SimpleNamespace(slot=job.slot, pt=job.pt.to(torch.device("cpu")), plan=job.plan,
                           **{k: getattr(job, k).cpu().clone() for k in ("alive", "groups", "used", "failed")})


def _same_state(job, twin, what: str) -> None:
    for k in ("alive", "groups", "used", "failed"):
        assert torch.equal(getattr(job, k).cpu(), getattr(twin, k)), f"{what}: {k} differs"


@contextmanager
def _lockstep(poet, cpu_rules: RuleReplay):
    """At every step, the device's masks and updates against the CPU's rules on a copy of the state:
    bitwise equal (the C rules where the kernel builds, so all three definitions meet here)."""
    eng = poet.engine
    seen = {"mask": 0, "update": 0}

    def mask(job):
        twin = _cpu_twin(job)
        m = Engine._mask(eng, job)
        assert torch.equal(m.cpu(), Engine._mask(cpu_rules, twin)), f"mask differs at slot {job.slot}"
        _same_state(job, twin, f"mask at slot {job.slot}")
        seen["mask"] += 1
        return m

    def update(job, tok):
        twin = _cpu_twin(job)
        Engine._update(eng, job, tok)
        Engine._update(cpu_rules, twin, tok.cpu())
        _same_state(job, twin, f"update at slot {job.slot}")
        seen["update"] += 1

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(eng, "_mask", mask)
        mp.setattr(eng, "_update", update)
        yield seen


@pytest.mark.parametrize("req", REQS[:1] + REQS[4:], ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_device_rules_equal_cpu_rules(dpoet, req):
    with _lockstep(dpoet, RuleReplay(EngineVocab(dpoet.vi))) as seen:
        poems = dpoet.write(req)
    assert seen["mask"] > 0 and seen["update"] >= seen["mask"]
    for p in poems:
        assert_guarantees(dpoet.validate(req), p.text)


def test_batched_requests_on_the_device(dpoet):
    """Mixed concurrent requests share the device's batches; every poem keeps every guarantee, and on
    the CPU each equals the same request written alone."""
    alone = {i: [p.text for p in dpoet.write(r)] for i, r in enumerate(REQS)}

    async def main():
        return await asyncio.gather(*(dpoet.awrite(r) for r in REQS))

    try:
        got = asyncio.run(main())
        assert dpoet._batcher.stats["max_rows_in_step"] > 4  # more than one request per step
    finally:
        if dpoet._batcher is not None:
            dpoet._batcher.close()
            dpoet._batcher = None
    for i, (r, poems) in enumerate(zip(REQS, got, strict=True)):
        for p in poems:
            assert_guarantees(dpoet.validate(r), p.text)
        if _exact(dpoet.device_name):
            assert [p.text for p in poems] == alone[i]


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_critic_on_the_device_hands_back_cpu_tensors(model_tok, device):
    _, tok = model_tok
    ref, crit = tiny_critic(tok, seed=0), tiny_critic(tok, seed=0).to(device)
    texts, forms = ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "春眠不觉晓，处处闻啼鸟。"], ["五绝", "五绝"]
    for a, b in ((ref.score(texts, forms), crit.score(texts, forms)),
                 (ref.rating(texts, forms), crit.rating(texts, forms)),
                 (ref.glance(texts[0], "五绝", [0, 1, 5]), crit.glance(texts[0], "五绝", [0, 1, 5])),
                 (ref.masked_logprobs(texts[0], "五绝", [2, 3]), crit.masked_logprobs(texts[0], "五绝", [2, 3]))):
        assert b.device.type == "cpu"
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_poet_with_critic_on_the_device(model_tok, device):
    """Choosing and mending with the critic beside a device engine (mending replays the rules on the CPU)."""
    model, tok = model_tok
    poet = Poet(model, tok, version="tiny-0", critic=tiny_critic(tok, seed=0), candidates=4, device=device)
    try:
        assert poet.critic.device.type == canonical(device).type
        assert poet._rules.ev.device.type == "cpu"
        req = PoemRequest(form="七绝", seed=3)
        poems = poet.write(req)
        assert "critic" in poems[0].scores
        assert_guarantees(poet.validate(req), poems[0].text)
    finally:
        poet.close()


def test_device_selection(monkeypatch):
    monkeypatch.setenv("SHIREN_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("SHIREN_DEVICE")
    assert resolve_device().type == ("cuda" if HAS_CUDA else "cpu")  # auto
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")
    if not HAS_CUDA:
        with pytest.raises(DeviceError, match="no CUDA"):
            resolve_device("cuda")
        monkeypatch.setenv("SHIREN_DEVICE", "cuda")
        with pytest.raises(DeviceError, match="no CUDA"):
            resolve_device()
    else:
        assert resolve_device("cuda") == torch.device("cuda", torch.cuda.current_device())
        with pytest.raises(DeviceError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_cpu_poet_keeps_the_c_kernel(model_tok, monkeypatch):
    """SHIREN_DEVICE=cpu (and auto without CUDA): the CPU engine as before — the C kernel where it builds."""
    from core.fastc import load_kernel

    monkeypatch.setenv("SHIREN_DEVICE", "cpu")
    poet = Poet(*model_tok, version="tiny-0")
    try:
        assert poet.device == torch.device("cpu")
        built = load_kernel() is not None
        assert type(poet.engine.fast).__name__ == ("CFastLlama" if built else "FastLlama")
        assert (poet.engine.ev.c is not None) == built and poet.engine.fast.max_rows == 64
    finally:
        poet.close()


@pytest.mark.cuda
@requires_cuda
def test_cuda_engine_takes_large_batches(model_tok):
    """Four n=64 requests decode in one 256-row batch on the GPU."""
    poet = Poet(*model_tok, version="tiny-0", device="cuda")
    try:
        assert poet.engine.fast.max_rows >= 256
        reqs = [PoemRequest(form="七绝", n=64, seed=s) for s in range(4)]
        jobs = [poet.make_job(r) for r in reqs]
        poet.engine.run([j for _, j in jobs])
        for r, (req, job) in zip(reqs, jobs, strict=True):
            poems = poet.finish_job(req, job)
            assert len(poems) >= 1
            for p in poems:
                assert_guarantees(poet.validate(r), p.text)
    finally:
        poet.close()


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_bench_device_rows(tmp_path, device):
    """`shiren bench`'s GPU rows (device_speed), run here on the CPU so the code is exercised offline."""
    from test_bench_compare import _rows_of

    from training.bench import device_speed

    model, tok = tiny_model_and_tokenizer(seed=3)
    model.save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    g = device_speed(tmp_path, device, n=2, reps=1, n_same=2, progress=lambda s: None)
    assert g["latency_七绝"]["p50_ms"] > 0 and g["throughput_n256"]["poems_per_s"] > 0
    assert g["guarantees"]["held"] == g["guarantees"]["poems"] > 0
    if _exact(device):
        assert g["fast_equals_reference"]["same_poems"] == 2
    else:
        assert g["path"].startswith("torch forward") and g["throughput_n256"]["one_batch"]
    rows = [r for r in _rows_of({"gpu": g}) if "GPU" in r[0]]
    assert len(rows) == 6 and g["device"] in rows[0][0]


@pytest.mark.parametrize("device", DEVICES)
def test_contrastive_decoding_on_the_torch_path(model_tok, device):
    """Contrastive decoding on the PyTorch engine (the code a GPU runs): every guarantee on every poem, a
    seed repeats, and on the CPU the reference path's poems exactly."""
    from core.contrast import Contrast
    from core.weights import LoadedWeights

    model, tok = model_tok
    torch.manual_seed(7)
    am = build_model(GPTConfig(arch="llama", vocab_size=len(tok), block_size=256, n_layer=1, n_head=2,
                               n_embd=16)).eval()
    weights = LoadedWeights(am.config.to_dict(), dict(am.state_dict()), torch.float32)
    c = Contrast(beta=1.0, alpha=0.1)
    if device == "cuda":
        poet = Poet(model, tok, version="tiny-0", device="cuda", amateur=weights, contrast=c)
        assert poet.engine.amateur.kv.is_cuda
    else:
        poet = Poet(model, tok, version="tiny-0", device="cpu", amateur=weights, contrast=c)
        poet.engine = Engine(FastLlama.from_hf(model, max_rows=64, fused=device == "cpu"),
                             EngineVocab(poet.vi, kernel=False),
                             amateur=FastLlama.from_hf(am, max_rows=64, fused=device == "cpu"), contrast=c)
    try:
        for req in REQS:
            poems = poet.write(req)
            for p in poems:
                assert_guarantees(poet.validate(req), p.text)
            assert [p.text for p in poet.write(req)] == [p.text for p in poems]
            if _exact(device):
                assert [p.text for p in poems] == [p.text for p in poet.write_reference(req)]
    finally:
        poet.close()
