"""`shiren bench`: generation speed against baselines, cold start and memory, measured in one run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from core.types import PoemRequest

SAMPLE_QILU = "风急天高猿啸哀，渚清沙白鸟飞回。无边落木萧萧下，不尽长江滚滚来。万里悲秋常作客，百年多病独登台。艰难苦恨繁霜鬓，潦倒新停浊酒杯。"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _time(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def peak_gflops(kernel_isa: str) -> tuple[float, str]:
    """The matmul rate (torch's float32 GEMM, i.e. MKL) the decode step is measured against, and the ISA
    it ran with. A kernel built without AVX-512 on a CPU that has it (the stand-in for an AVX2-only
    CPU) is measured against MKL limited to AVX2 in a subprocess (MKL reads its limit once, at load):
    against the AVX-512 rate it would look a third worse than on a real AVX2 machine."""
    import subprocess
    import sys

    from core.cpu_share import cpu_flags

    if kernel_isa != "avx2+fma" or "avx512f" not in cpu_flags():
        return matmul_gflops(), "native"
    code = "from training.bench import matmul_gflops; print(matmul_gflops())"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                             env={**os.environ, "MKL_ENABLE_INSTRUCTIONS": "AVX2"}).stdout
        return float(out.strip().splitlines()[-1]), "avx2 (MKL_ENABLE_INSTRUCTIONS=AVX2)"
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return matmul_gflops(), "native"


def matmul_gflops(d: int = 512, reps: int = 20) -> float:
    a, b = torch.randn(256, d), torch.randn(d, 4 * d)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * 256 * d * 4 * d * reps / (time.perf_counter() - t) / 1e9


def stock_generate_until_form(model, tok, form: str, seed: int, max_tries: int = 50) -> tuple[float, int]:
    """Stock `generate()` from the same header, retried until the form holds: (seconds, tries)."""
    from core.prompt import EOS, header
    from training.evaluate import format_ok

    req = PoemRequest(form=form)
    ids = torch.tensor([tok(header(form), add_special_tokens=False)["input_ids"]])
    t = time.perf_counter()
    for tries in range(1, max_tries + 1):
        torch.manual_seed(seed * 1000 + tries)
        out = model.generate(ids, do_sample=True, temperature=req.temperature, top_p=req.top_p, max_new_tokens=40,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        text = tok.decode(out[0, ids.shape[1]:]).split(EOS)[0]
        if format_ok(text, req):
            break
    return time.perf_counter() - t, tries


def run_bench(model_dir: Path | None = None, n_latency: int = 50, quick: bool = False, cold: bool = True,
              progress=print, contended: bool = False, compare_model_dir: Path | None = None) -> dict:
    from core.poet import Poet
    from training.model import GPTConfig, build_model, n_params

    res: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                            f"{torch.get_num_threads()} threads", "cuda": torch.cuda.is_available()}
    # The CPU rows stay the CPU's on a GPU machine too (comparable with docs/bench.md); the GPU's follow.
    # The plain path; the contrastive decoder's and the critic's rows come after.
    poet = Poet.load(model_dir, critic=None, device="cpu", amateur=None)
    fast = poet.engine.fast if poet.engine is not None else None
    res["model"] = {"version": poet.version, "params": n_params(poet.model), "fast_engine": fast is not None,
                    "forward": {"CFastLlama": "C kernel", "FastLlama": "torch"}.get(type(fast).__name__, "HF"),
                    "dtype": str(getattr(fast, "layer_dtype", getattr(fast, "dtype", ""))).removeprefix("torch."),
                    "isa": fast.lib.shiren_isa().decode() if hasattr(fast, "lib") else "torch"}
    n = 10 if quick else n_latency
    poet.write(PoemRequest(form="七绝", seed=0))  # warm-up
    for form in ("七绝", "七律"):
        lat = _time(lambda i, f=form: poet.write(PoemRequest(form=f, seed=i)), n)
        res[f"latency_{form}"] = {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 95), "n": n}
        progress(f"{form} n=1: p50 {res[f'latency_{form}']['p50_ms']:.1f} ms")
    if contended:
        res["contended"] = contended_latency(poet, n, progress)
    if compare_model_dir is not None:
        res["compare_model"] = model_speed(compare_model_dir, n, 2 if quick else 5)
        progress(f"compared model {res['compare_model']['version']}: 七绝 p50 "
                 f"{res['compare_model']['latency_七绝']['p50_ms']:.1f} ms")
    for batch in (16, 64):
        reps = 2 if quick else 5
        ts = _time(lambda i, b=batch: poet.write(PoemRequest(form="七绝", n=b, seed=i)), reps)
        res[f"throughput_n{batch}"] = {"poems_per_s": batch / statistics.median(ts)}
        progress(f"七绝 n={batch}: {res[f'throughput_n{batch}']['poems_per_s']:.0f} poems/s")
    res.update(contrast_bench(model_dir, n, quick, progress))
    res.update(critic_bench(model_dir, n, quick, progress))
    if torch.cuda.is_available():
        res["gpu"] = device_speed(model_dir, "cuda", n, 2 if quick else 5, 5 if quick else 15, progress)
    poet.write_reference(PoemRequest(form="七绝", seed=0))  # builds the HF model (not timed)
    ref, same = [], []
    for i in range(5 if quick else 15):
        r = PoemRequest(form="七绝", seed=i)
        t = time.perf_counter()
        ref_poems = [p.text for p in poet.write_reference(r)]
        ref.append(time.perf_counter() - t)
        same.append(ref_poems == [p.text for p in poet.write(r)])  # same seed, fast path: same poems?
    res["reference_path_七绝_p50_ms"] = 1000 * statistics.median(ref)
    res["fast_equals_reference"] = {"same_poems": sum(same), "requests": len(same),
                                    "differing_seeds": [i for i, ok in enumerate(same) if not ok]}
    progress(f"reference path (HF forward, same constraints): {res['reference_path_七绝_p50_ms']:.1f} ms")
    # Stock generate() on the same model, retried until the form holds.
    model, tok = poet.model, poet.tokenizer
    stock = [stock_generate_until_form(model, tok, "七绝", i) for i in range(3 if quick else 10)]
    res["stock_generate_same_model"] = {"p50_ms_per_valid_poem": 1000 * statistics.median(s for s, _ in stock),
                                        "mean_tries": statistics.mean(k for _, k in stock)}
    t32 = []
    ids = torch.tensor([[tok.bos_token_id] * 8])
    for i in range(3 if quick else 10):
        torch.manual_seed(i)
        t = time.perf_counter()
        model.generate(ids, do_sample=True, max_new_tokens=32, min_new_tokens=32, pad_token_id=tok.pad_token_id)
        t32.append(time.perf_counter() - t)
    res["stock_generate_same_model"]["ms_per_32_tokens"] = 1000 * statistics.median(t32)
    progress(f"stock generate (same model): {res['stock_generate_same_model']['p50_ms_per_valid_poem']:.0f} ms/valid poem")
    big = build_model(GPTConfig(arch="gpt2", vocab_size=len(tok), n_layer=12, n_head=12, n_embd=768, block_size=256)).eval()
    tb = []
    with torch.inference_mode():
        for i in range(2 if quick else 5):
            torch.manual_seed(i)
            t = time.perf_counter()
            big.generate(ids, do_sample=True, max_new_tokens=32, min_new_tokens=32, pad_token_id=tok.pad_token_id)
            tb.append(time.perf_counter() - t)
    res["stock_generate_100M"] = {"params": n_params(big), "ms_per_32_tokens": 1000 * statistics.median(tb)}
    del big
    progress(f"stock generate (GPT-2-base size, {res['stock_generate_100M']['params'] / 1e6:.0f}M): "
             f"{res['stock_generate_100M']['ms_per_32_tokens']:.0f} ms / 32 tokens")
    fast = res["latency_七绝"]["p50_ms"]
    res["ratios"] = {
        "vs_reference_path": res["reference_path_七绝_p50_ms"] / fast,
        "vs_stock_same_model": res["stock_generate_same_model"]["p50_ms_per_valid_poem"] / fast,
        "vs_stock_100M": res["stock_generate_100M"]["ms_per_32_tokens"] / fast,
    }
    gf, peak_isa = peak_gflops(res["model"]["isa"])
    res["floor_isa"] = peak_isa
    prompt_tokens, poem_tokens = 4, 32
    flops = 2 * res["model"]["params"] * (prompt_tokens + poem_tokens)
    res["floor"] = {"matmul_gflops": gf, "flops_per_poem": flops, "floor_ms_per_poem": flops / (gf * 1e9) * 1000}
    # The decode step's arithmetic rate at n=64, as a share of the measured matmul rate.
    rate = res["throughput_n64"]["poems_per_s"] * flops / 1e9
    res["throughput_n64"].update(gflops=rate, fraction_of_peak=rate / gf)
    if cold:
        res["cold_start"] = cold_start()
        res["memory"] = serving_memory(model_dir)
    poet.close()
    return res


def _wall(cmd: list[str], reps: int = 3) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False, timeout=300)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def cold_start() -> dict:
    exe = [sys.executable, "-m", "core.cli"]
    write_s = _wall(exe + ["write", "--form", "七绝", "--seed", "1"])
    check_s = _wall(exe + ["check", SAMPLE_QILU])
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv=['shiren','check','x']; import core.cli, core.gelv.cli; "
         "print(int('torch' in sys.modules))"], capture_output=True, text=True, timeout=120)
    return {"write_s": write_s, "check_s": check_s, "check_imports_torch": probe.stdout.strip() == "1"}


def peak_rss_kb() -> int:
    """This process's peak resident set. VmHWM where there is /proc: ru_maxrss of a child spawned by a
    large parent includes the parent's pages at fork (Linux keeps the high-water mark across exec)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) for x in f if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def serving_memory(model_dir: Path | None) -> dict:
    code = (
        "import sys; from pathlib import Path; from core.poet import Poet; from core.types import PoemRequest\n"
        "p = Poet.load(Path(sys.argv[1]) if len(sys.argv) > 1 else None)\n"
        "forms = ['五绝', '七绝', '五律', '七律']\n"
        "for i in range(100):\n"
        "    f = forms[i % 4]\n"
        "    p.write(PoemRequest(form=f, seed=i) if i % 5 else PoemRequest(form='词', cipai='浣溪沙', seed=i))\n"
        "from training.bench import peak_rss_kb; print(peak_rss_kb())\n"
    )
    args = [str(model_dir)] if model_dir else []
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=900)
    try:
        kb = int(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": r.stderr[-300:]}
    return {"peak_rss_mb_after_100_requests": kb / 1024}


def model_speed(model_dir: Path, n: int, reps: int) -> dict:
    """Latency and throughput of another model in the same run (old vs new base, side by side)."""
    from core.poet import Poet
    from training.model import n_params

    poet = Poet.load(model_dir, device="cpu")
    try:
        poet.write(PoemRequest(form="七绝", seed=0))  # warm-up
        out: dict = {"version": poet.version, "params": n_params(poet.model)}
        for form in ("七绝", "七律"):
            lat = _time(lambda i, f=form: poet.write(PoemRequest(form=f, seed=i)), n)
            out[f"latency_{form}"] = {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 95)}
        ts = _time(lambda i: poet.write(PoemRequest(form="七绝", n=64, seed=i)), reps)
        out["throughput_n64"] = {"poems_per_s": 64 / statistics.median(ts)}
        return out
    finally:
        poet.close()


def device_speed(model_dir: Path | None, device: str, n: int, reps: int, n_same: int, progress=print) -> dict:
    """The engine on `device` (the GPU's rows; any device works, so the tests run it on the CPU): 七绝 n=1
    latency, n=64 throughput, n=256 (four n=64 requests decoding together, as the batcher feeds it), how
    many seeds give the reference path's poems, and how many poems keep every guarantee."""
    from core.device import describe
    from core.poet import GUARANTEES, Poet

    poet = Poet.load(model_dir, critic=None, device=device)
    try:
        fast = poet.engine.fast
        forward = "C kernel" if type(fast).__name__ == "CFastLlama" else "torch"
        rules = "C" if poet.engine.ev.c is not None else "torch"
        out: dict = {"device": describe(poet.device), "max_rows": fast.max_rows,
                     "path": f"{forward} forward {str(fast.dtype).removeprefix('torch.')}, {rules} masks and sampler"}
        poems: list = []

        def write(req: PoemRequest) -> None:
            poems.extend(poet.write(req))

        write(PoemRequest(form="七绝", seed=0))  # warm-up: CUDA context, kernels, allocator
        write(PoemRequest(form="七绝", n=64, seed=0))
        lat = _time(lambda i: write(PoemRequest(form="七绝", seed=i)), n)
        out["latency_七绝"] = {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 95), "n": n}
        progress(f"{device} 七绝 n=1: p50 {out['latency_七绝']['p50_ms']:.1f} ms")
        ts = _time(lambda i: write(PoemRequest(form="七绝", n=64, seed=i)), reps)
        out["throughput_n64"] = {"poems_per_s": 64 / statistics.median(ts)}

        def four(i: int) -> None:
            reqs = [PoemRequest(form="七绝", n=64, seed=1000 * i + k) for k in range(4)]
            jobs = [poet.make_job(r) for r in reqs]
            with poet._lock:
                poet.engine.run([j for _, j in jobs])
            for req, job in jobs:
                poems.extend(poet.finish_job(req, job))

        ts = _time(four, reps)
        out["throughput_n256"] = {"poems_per_s": 256 / statistics.median(ts), "one_batch": fast.max_rows >= 256}
        progress(f"{device} 七绝 n=64: {out['throughput_n64']['poems_per_s']:.0f} poems/s, "
                 f"n=256: {out['throughput_n256']['poems_per_s']:.0f} poems/s")
        same = 0
        for i in range(n_same):
            r = PoemRequest(form="七绝", seed=i)
            same += [p.text for p in poet.write_reference(r)] == [p.text for p in poet.write(r)]
        out["fast_equals_reference"] = {"same_poems": same, "requests": n_same}
        # What the decoder guarantees (form, rhyme, relaxed tone, by common readings too) on every poem written.
        held = sum(all(p.scores.get(k) for k in GUARANTEES) for p in poems)
        out["guarantees"] = {"held": held, "poems": len(poems)}
        progress(f"{device}: same poems as the reference path {same}/{n_same}; guarantees held {held}/{len(poems)}")
        return out
    finally:
        poet.close()


def contended_latency(poet, n: int, progress=print) -> dict:
    """七绝 n=1 latency while another process keeps one core busy (a plain Python loop, as a test suite
    or a training step would), with the decode threads adaptive (core.cpu_share) and pinned to all
    cores (the old behaviour), beside the idle figure measured just before."""
    import subprocess
    import sys

    from core.cpu_share import FreeCores, usable_cores

    eng = poet.engine
    out: dict = {}
    idle = _time(lambda i: poet.write(PoemRequest(form="七绝", seed=i)), n)
    out["idle"] = {"p50_ms": 1000 * statistics.median(idle), "p95_ms": 1000 * _pct(idle, 95)}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        adaptive = FreeCores(pinned=0)  # as a serving process: its readings run while the hog starts
        time.sleep(0.5)
        saved = eng.cores if eng is not None else None
        for name, cores in (("adaptive", adaptive), ("all cores", FreeCores(pinned=usable_cores()))):
            if eng is not None:
                eng.cores, eng.threads = cores, 0
            lat = _time(lambda i: poet.write(PoemRequest(form="七绝", seed=i)), n)
            out[name] = {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 95),
                         "threads": eng.threads if eng is not None else None}
            progress(f"七绝 n=1 with a busy core, {name}: p50 {out[name]['p50_ms']:.1f} ms, "
                     f"p95 {out[name]['p95_ms']:.1f} ms")
        if eng is not None:
            eng.cores, eng.threads = saved, 0
    finally:
        hog.kill()
        hog.wait()
    a = out["adaptive"]
    out["p50_vs_idle"] = a["p50_ms"] / out["idle"]["p50_ms"]
    out["p95_vs_p50"] = a["p95_ms"] / a["p50_ms"]
    return out


def contrast_bench(model_dir: Path | None, n: int, quick: bool, progress=print) -> dict:
    """七绝 n=1 latency and n=64 throughput with contrastive decoding against the shipped amateur
    (core.contrast), when there is one that fits the model."""
    from core.poet import Poet

    poet = Poet.load(model_dir, critic=None, device="cpu", amateur="auto")
    try:
        if poet.contrast is None:
            return {}
        poet.write(PoemRequest(form="七绝", seed=0))  # warm-up
        lat = _time(lambda i: poet.write(PoemRequest(form="七绝", seed=i)), n)
        ts = _time(lambda i: poet.write(PoemRequest(form="七绝", n=64, seed=i)), 2 if quick else 5)
    finally:
        poet.close()
    out = {"contrast": {"beta": poet.contrast.beta, "alpha": poet.contrast.alpha,
                        "amateur_params": poet.amateur.n_params,
                        "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 95), "n": n,
                        "poems_per_s_n64": 64 / statistics.median(ts)}}
    progress(f"七绝 n=1 with contrastive decoding: p50 {out['contrast']['p50_ms']:.1f} ms; "
             f"n=64 {out['contrast']['poems_per_s_n64']:.0f} poems/s")
    return out


def critic_bench(model_dir: Path | None, n: int, quick: bool, progress=print) -> dict:
    """The critic's path beside the plain one: 七绝 n=1 choosing among its drafts (and mending), and n=64."""
    from core.poet import Poet

    poet = Poet.load(model_dir, critic="on", device="cpu")  # measured whether or not it is promoted
    if poet.critic is None:
        poet.close()
        return {}
    out: dict = {"critic_candidates": poet.candidates}
    poet.write(PoemRequest(form="七绝", seed=0))  # warm-up
    for label, polish in (("choose", False), ("choose_mend", True)):
        poet.polish = polish
        lat = _time(lambda i: poet.write(PoemRequest(form="七绝", seed=i)), n)
        out[f"critic_{label}_七绝"] = {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _pct(lat, 95), "n": n}
        progress(f"七绝 n=1 with the critic ({label}): p50 {out[f'critic_{label}_七绝']['p50_ms']:.1f} ms")
    ts = _time(lambda i: poet.write(PoemRequest(form="七绝", n=64, seed=i)), 2 if quick else 3)
    out["critic_throughput_n64"] = {"poems_per_s": 64 / statistics.median(ts)}
    progress(f"七绝 n=64 with the critic: {out['critic_throughput_n64']['poems_per_s']:.0f} poems/s")
    poet.close()
    return out


def bench_rows(res: dict) -> list[tuple[str, str, str]]:
    rows = [
        ("七绝 n=1 latency p50 / p95", f"{res['latency_七绝']['p50_ms']:.1f} / {res['latency_七绝']['p95_ms']:.1f} ms",
         "≤ 40 ms p50" if res.get("model", {}).get("isa") == "avx2+fma" else "≤ 30 ms p50"),
        ("七律 n=1 latency p50 / p95", f"{res['latency_七律']['p50_ms']:.1f} / {res['latency_七律']['p95_ms']:.1f} ms", ""),
        ("七绝 n=16 throughput", f"{res['throughput_n16']['poems_per_s']:.0f} poems/s", ""),
        ("七绝 n=64 throughput", f"{res['throughput_n64']['poems_per_s']:.0f} poems/s", "≥ 300 poems/s"),
        ("  its arithmetic rate / measured matmul rate" + ("" if res.get("floor_isa", "native") == "native"
                                                           else f" ({res['floor_isa']})"),
         f"{res['throughput_n64'].get('gflops', 0):.0f} GFLOP/s, {100 * res['throughput_n64'].get('fraction_of_peak', 0):.0f}%",
         "≥ 50%"),
        ("reference path (HF forward, same masks)", f"{res['reference_path_七绝_p50_ms']:.1f} ms", ""),
        ("same poems as the reference path (fixed seeds)",
         f"{res['fast_equals_reference']['same_poems']} / {res['fast_equals_reference']['requests']}"
         + (f" (seeds {', '.join(map(str, d))} differ)" if (d := res["fast_equals_reference"].get("differing_seeds"))
            else ""), "all"),
        ("stock generate(), same model, until form holds",
         f"{res['stock_generate_same_model']['p50_ms_per_valid_poem']:.0f} ms "
         f"({res['stock_generate_same_model']['mean_tries']:.1f} tries)", ""),
        ("stock generate(), same model, 32 tokens", f"{res['stock_generate_same_model']['ms_per_32_tokens']:.0f} ms", ""),
        (f"stock generate(), {res['stock_generate_100M']['params'] / 1e6:.0f}M GPT-2, 32 tokens",
         f"{res['stock_generate_100M']['ms_per_32_tokens']:.0f} ms", ""),
        ("speed-up vs reference path", f"{res['ratios']['vs_reference_path']:.1f}×", ""),
        ("speed-up vs stock generate (same model)", f"{res['ratios']['vs_stock_same_model']:.1f}×", "≥ 6×"),
        ("speed-up vs 100M stock generate", f"{res['ratios']['vs_stock_100M']:.1f}×", "≥ 25×"),
        ("floor: model FLOPs / matmul rate", f"{res['floor']['floor_ms_per_poem']:.3f} ms "
         f"({res['floor']['matmul_gflops']:.0f} GFLOP/s)", ""),
    ]
    if "compare_model" in res:
        m = res["compare_model"]
        rows += [
            (f"beside it: {m['version']} ({m['params'] / 1e6:.1f}M) 七绝 n=1 p50 / p95",
             f"{m['latency_七绝']['p50_ms']:.1f} / {m['latency_七绝']['p95_ms']:.1f} ms", ""),
            ("  七律 n=1 p50 / p95", f"{m['latency_七律']['p50_ms']:.1f} / {m['latency_七律']['p95_ms']:.1f} ms", ""),
            ("  七绝 n=64 throughput", f"{m['throughput_n64']['poems_per_s']:.0f} poems/s", ""),
        ]
    if "contended" in res:
        c = res["contended"]
        rows += [
            ("七绝 n=1, one core busy: idle p50 / p95", f"{c['idle']['p50_ms']:.1f} / {c['idle']['p95_ms']:.1f} ms", ""),
            ("  adaptive threads p50 / p95", f"{c['adaptive']['p50_ms']:.1f} / {c['adaptive']['p95_ms']:.1f} ms "
             f"({c['adaptive']['threads']} thread(s))", ""),
            ("  all cores (before) p50 / p95", f"{c['all cores']['p50_ms']:.1f} / {c['all cores']['p95_ms']:.1f} ms", ""),
            ("  adaptive: p50 vs idle, p95 vs p50", f"{c['p50_vs_idle']:.2f}× , {c['p95_vs_p50']:.2f}×", "≤ 2.5× , ≤ 1.5×"),
        ]
    if "gpu" in res:
        g = res["gpu"]
        rows += [
            (f"GPU: {g['device']}", f"{g['path']}, {g['max_rows']} cache rows", ""),
            ("  GPU 七绝 n=1 latency p50 / p95", f"{g['latency_七绝']['p50_ms']:.1f} / {g['latency_七绝']['p95_ms']:.1f} ms", ""),
            ("  GPU 七绝 n=64 throughput", f"{g['throughput_n64']['poems_per_s']:.0f} poems/s", ""),
            ("  GPU 七绝 n=256 throughput (4 × n=64 together)", f"{g['throughput_n256']['poems_per_s']:.0f} poems/s", ""),
            ("  GPU same poems as the reference path (fixed seeds)",
             f"{g['fast_equals_reference']['same_poems']} / {g['fast_equals_reference']['requests']}",
             "most (numerics differ)"),
            ("  GPU poems keeping every guarantee", f"{g['guarantees']['held']} / {g['guarantees']['poems']}", "all"),
        ]
    if "contrast" in res:
        c = res["contrast"]
        rows += [(f"七绝 n=1 with contrastive decoding (β {c['beta']:g}, {c['amateur_params'] / 1e6:.1f}M amateur)",
                  f"{c['p50_ms']:.1f} / {c['p95_ms']:.1f} ms", ""),
                 ("七绝 n=64 throughput with contrastive decoding", f"{c['poems_per_s_n64']:.0f} poems/s", "")]
    if "critic_choose_mend_七绝" in res:
        k = res["critic_candidates"]
        for label, what in (("choose", f"choose among {k} drafts"), ("choose_mend", f"choose among {k} + mend")):
            r = res[f"critic_{label}_七绝"]
            rows.append((f"七绝 n=1 with the critic: {what}", f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms",
                         "≤ 150 ms p50" if label == "choose_mend" else ""))
        rows.append(("七绝 n=64 throughput with the critic", f"{res['critic_throughput_n64']['poems_per_s']:.0f} poems/s", ""))
    if "cold_start" in res:
        cs = res["cold_start"]
        rows += [("cold start: shiren write", f"{cs['write_s']:.2f} s", "< 3 s"),
                 ("cold start: shiren check", f"{cs['check_s']:.2f} s (imports torch: {cs['check_imports_torch']})", "< 0.5 s"),
                 ("serving peak RSS (100 requests)", f"{res['memory'].get('peak_rss_mb_after_100_requests', 0):.0f} MB", "< 600 MB")]
    return rows


def print_bench(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"shiren bench — {res['machine']}; model {res['model']['params'] / 1e6:.1f}M params; "
                    f"forward: {res['model'].get('forward', '?')} {res['model'].get('dtype', '')} ({res['model'].get('isa', '?')})")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    for r in bench_rows(res):
        t.add_row(*r)
    Console().print(t)


def to_markdown(res: dict) -> str:
    lines = [f"Machine: {res['machine']}; model {res['model']['version']}, {res['model']['params']:,} parameters; "
             f"forward: {res['model'].get('forward', '?')} {res['model'].get('dtype', '')} "
             f"({res['model'].get('isa', '?')} path).", "",
             "| measure | value | target |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in bench_rows(res)]
    return "\n".join(lines) + "\n"


def save(res: dict, path: Path) -> None:
    from core.atomic import write_text

    write_text(path, json.dumps(res, ensure_ascii=False, indent=1))
