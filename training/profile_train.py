"""How fast does a training step run here, and how close to the CPU's peak is it?

    python -m training.profile_train peaks                      # measured fp32 / bf16 matmul FLOP/s
    python -m training.profile_train step --n-embd 384 --n-layer 6 --bf16 --compile
    python -m training.profile_train step ... --trace prof.json  # torch.profiler table (+ Chrome trace)

Each measurement is the median of repeated short timings (the machine is shared). Results are JSON
lines on stdout so docs/training.md can be rebuilt from them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from training.model import GPTConfig, build_model, n_params


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 7) -> float:
    """FLOP/s of a square (n×n)·(n×n) torch.matmul in `dtype` (bf16 runs on AMX/AVX512-BF16 where present)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times)


def model_flops_per_token(cfg: GPTConfig, n: int, seq: int) -> float:
    """Training FLOPs per token: 6·N for the weights (forward + backward) plus attention's
    QK^T and AV (2·2·T·d per layer forward, causal halves it in practice but the kernel does all)."""
    return 6 * n + 12 * cfg.n_layer * seq * cfg.n_embd


def time_steps(cfg: GPTConfig, batch: int, *, bf16: bool, compile_: bool, opt_impl: str, steps: int,
               warmup: int, trace: str | None = None) -> dict:
    from training.pretrain import LossModule, TrainConfig, make_optimizer

    torch.manual_seed(0)
    model = build_model(cfg)
    tc = TrainConfig(out_dir="", dataset_dir="", model=cfg, batch_size=batch, max_steps=10_000, optimizer=opt_impl)
    dev = torch.device("cpu")
    opt, sched = make_optimizer(model, tc, dev)
    dev_loss = LossModule(model, dev, bf16)
    loss_fn = torch.compile(dev_loss, dynamic=False) if compile_ else dev_loss
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(4, cfg.vocab_size, (steps + warmup, batch, cfg.block_size + 1), generator=gen)

    def one(i):
        loss = loss_fn(data[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        return loss.item()

    t0 = time.perf_counter()
    one(0)
    first = time.perf_counter() - t0  # includes compilation
    for i in range(1, warmup):
        one(i)
    times = []
    for i in range(warmup, warmup + steps):
        t = time.perf_counter()
        one(i)
        times.append(time.perf_counter() - t)
    if trace:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
            for i in range(2):
                one(i)
        prof.export_chrome_trace(trace)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    n = n_params(model)
    med = statistics.median(times)
    tokens = batch * cfg.block_size
    return {"params": n, "n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "block": cfg.block_size, "batch": batch,
            "bf16": bf16, "compile": compile_, "opt": opt_impl, "first_step_s": round(first, 2),
            "step_s": round(med, 4), "step_min_s": round(min(times), 4), "tok_s": round(tokens / med),
            "tok_s_best": round(tokens / min(times)),
            "flop_s": model_flops_per_token(cfg, n, cfg.block_size) * tokens / med}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("peaks")
    s = sub.add_parser("step")
    s.add_argument("--n-layer", type=int, default=4)
    s.add_argument("--n-embd", type=int, default=256)
    s.add_argument("--block", type=int, default=256)
    s.add_argument("--batch", type=int, default=32)
    s.add_argument("--vocab", type=int, default=7651)
    s.add_argument("--bf16", action="store_true")
    s.add_argument("--compile", action="store_true")
    s.add_argument("--opt", default="foreach")
    s.add_argument("--steps", type=int, default=6)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--trace", default=None)
    a = ap.parse_args()
    if a.cmd == "peaks":
        for dt in (torch.float32, torch.bfloat16):
            print(json.dumps({"dtype": str(dt), "threads": torch.get_num_threads(),
                              "flop_s": matmul_peak(dt)}), flush=True)
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = GPTConfig(arch="llama", vocab_size=a.vocab, block_size=a.block, n_layer=a.n_layer,
                    n_head=max(1, a.n_embd // 64), n_embd=a.n_embd)
    r = time_steps(cfg, a.batch, bf16=a.bf16, compile_=a.compile, opt_impl=a.opt, steps=a.steps,
                   warmup=a.warmup, trace=a.trace)
    r["threads"] = torch.get_num_threads()
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
