"""`shiren bench --compare-model-dir`: another base model measured in the same run, side by side."""

from __future__ import annotations

from training.bench import bench_rows, model_speed


def test_model_speed_of_a_second_model(tmp_path):
    from core.testing import tiny_model_and_tokenizer

    model, tok = tiny_model_and_tokenizer(seed=3)
    model.save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    m = model_speed(tmp_path, n=2, reps=1)
    assert m["version"].startswith("base-") and m["params"] > 0
    assert m["latency_七绝"]["p50_ms"] > 0 and m["throughput_n64"]["poems_per_s"] > 0
    res = {"compare_model": m}
    rows = [r for r in _rows_of(res) if "beside it" in r[0]]
    assert rows and m["version"] in rows[0][0]


def test_markdown_names_the_kernel_path_that_ran():
    from training.bench import to_markdown

    res = {**_zeros(), "machine": "x86_64, 2 cores", "model": {"version": "base-x", "params": 5, "forward": "C kernel",
                                                               "dtype": "int8", "isa": "avx2+fma"}}
    head = to_markdown(res).splitlines()[0]
    assert "C kernel int8 (avx2+fma path)" in head
    assert any(r[2] == "≤ 40 ms p50" for r in bench_rows(res))  # the AVX2 target on an AVX2 path


def _rows_of(res: dict) -> list[tuple[str, str, str]]:
    """bench_rows on a result that has only the compared model (the rest filled with zeros)."""
    return bench_rows({**_zeros(), **res})


def _zeros() -> dict:
    zero = {"p50_ms": 0.0, "p95_ms": 0.0}
    base = {"latency_七绝": zero, "latency_七律": zero, "throughput_n16": {"poems_per_s": 0},
            "throughput_n64": {"poems_per_s": 0}, "reference_path_七绝_p50_ms": 0.0,
            "fast_equals_reference": {"same_poems": 0, "requests": 0},
            "stock_generate_same_model": {"p50_ms_per_valid_poem": 0, "mean_tries": 0, "ms_per_32_tokens": 0},
            "stock_generate_100M": {"params": 1e8, "ms_per_32_tokens": 0},
            "ratios": {"vs_reference_path": 0, "vs_stock_same_model": 0, "vs_stock_100M": 0},
            "floor": {"floor_ms_per_poem": 0, "matmul_gflops": 0}}
    return base


def test_contrast_bench_measures_the_shipped_amateur_when_it_fits(tmp_path, monkeypatch):
    import torch

    from core.testing import tiny_model_and_tokenizer
    from training.bench import contrast_bench
    from training.model import GPTConfig, build_model

    model, tok = tiny_model_and_tokenizer(seed=3)
    base, am = tmp_path / "base", tmp_path / "amateur"
    model.save_pretrained(str(base))
    tok.save_pretrained(str(base))
    monkeypatch.setenv("SHIREN_AMATEUR_DIR", str(am))
    assert contrast_bench(base, n=2, quick=True, progress=lambda _: None) == {}  # none shipped: no rows
    torch.manual_seed(1)
    build_model(GPTConfig(arch="llama", vocab_size=len(tok), block_size=256, n_layer=1, n_head=2,
                          n_embd=16)).save_pretrained(str(am))
    tok.save_pretrained(str(am))
    res = contrast_bench(base, n=2, quick=True, progress=lambda _: None)
    c = res["contrast"]
    assert c["p50_ms"] > 0 and c["poems_per_s_n64"] > 0 and c["amateur_params"] > 0
    assert [r for r in _rows_of(res) if "contrastive decoding" in r[0]]
