"""The base model's card: what it was trained on, how long, at what compute, how well (the curve, the
sweep that chose its size), what it writes unprompted and, with its adapter, one poem per request kind."""

from __future__ import annotations

import json
import math
import platform
import re
from dataclasses import replace
from pathlib import Path

import torch

from core.atomic import write_text
from core.types import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, PoemRequest
from training.plots import read_metrics

# One request of each kind in the instruction mix (training.sft_data.DEFAULT_MIX), across the five forms:
# the card's samples show what a user gets for each way of asking.
CARD_REQUESTS: tuple[tuple[str, PoemRequest], ...] = (
    ("title", PoemRequest(form="七律", title="秋夜怀友")),
    ("title+keywords", PoemRequest(form="七绝", title="江行", keywords=("孤帆", "明月"))),
    ("keywords", PoemRequest(form="五律", keywords=("松风", "山寺"))),
    ("title+acrostic", PoemRequest(form="七绝", title="春日", acrostic="春风十里")),
    ("acrostic", PoemRequest(form="五绝", acrostic="山高水长")),
    ("title+first_line", PoemRequest(form="五律", title="登楼", first_line="独上高楼望")),
    ("first_line", PoemRequest(form="七绝", first_line="一夜西风吹客衣")),
    ("title+keywords+acrostic", PoemRequest(form="七绝", title="咏梅", keywords=("暗香",), acrostic="梅开雪后")),
    ("title+keywords+first_line", PoemRequest(form="词", cipai="浣溪沙", title="春暮", keywords=("落花",),
                                              first_line="小院春深燕子飞")),
    ("", PoemRequest(form="词", cipai="蝶恋花")),
)


def describe_request(req: PoemRequest) -> str:
    """The request as a user would say it: form (词牌), then each condition given."""
    parts = [f"{req.form}·{req.cipai}" if req.cipai else req.form]
    if req.title:
        parts.append(f"题《{req.title}》")
    if req.keywords:
        parts.append("关键词 " + "、".join(req.keywords))
    if req.acrostic:
        parts.append(f"藏头 {req.acrostic}")
    if req.first_line:
        parts.append(f"首句 {req.first_line}")
    return "，".join(parts)


def request_samples(model_dir: Path, adapter_dir: Path, seed: int = 0) -> tuple[list[tuple[str, str, str]], str]:
    """(kind, request, poem) for each of CARD_REQUESTS, written by the poet (base + adapter, constrained
    decoding, its usual ranking and sampling; no critic) with a fixed seed: exactly what it writes, not
    picked; and how it sampled (contrastive decoding against the shipped amateur, or plain)."""
    from core.poet import Poet

    poet = Poet.load(model_dir, adapter_dir, critic=None)
    try:
        out = []
        for kind, req in CARD_REQUESTS:
            poem = poet.write(replace(req, seed=seed))[0]
            out.append((kind or "form alone", describe_request(req), poem.text))
        c = poet.contrast
        how = (f"contrastive decoding against the {poet.amateur.n_params / 1e6:.1f}M "
               f"amateur at β {c.beta:g}, α {c.alpha:g}" if c is not None else "plain sampling")
        return out, how
    finally:
        poet.close()


KINDS_HEADING = "## One poem per request kind"


def kinds_section(model_dir: Path, adapter: Path) -> str:
    """The card's section of one poem per request kind, as the poet writes them now."""
    rows, how = request_samples(model_dir, adapter)
    rows_md = "\n".join(f"| {k} | {r} | {p.replace(chr(10), ' / ')} |" for k, r, p in rows)
    return (f"{KINDS_HEADING}\n\nThis base with the adapter `{Path(adapter).name}`, "
            f"constrained decoding (form, rhyme, 平仄), seed 0, temperature {DEFAULT_TEMPERATURE:g} / top-p "
            f"{DEFAULT_TOP_P:g} and {how}: the defaults. The poet's first choice, unedited:\n\n"
            "| kind | request | poem |\n|---|---|---|\n" + rows_md + "\n")


def refresh_kinds_section(model_dir: Path, adapter: Path) -> Path:
    """Rewrite only that section of an existing card (when the defaults change and the run dir is gone)."""
    card = Path(model_dir) / "README.md"
    text = card.read_text("utf-8")
    start = text.find(KINDS_HEADING)
    if start < 0:
        raise ValueError(f"{card} has no '{KINDS_HEADING}' section")
    nxt = text.find("\n## ", start + len(KINDS_HEADING))
    end = len(text) if nxt < 0 else nxt + 1
    write_text(card, text[:start] + kinds_section(model_dir, adapter) + ("\n" if nxt >= 0 else "") + text[end:])
    return card


def valid_curve(rows: list[dict], every: int = 1000) -> list[tuple[int, int, float]]:
    """(step, tokens, valid loss) at every `every` steps and at the last evaluation. A step evaluated
    twice (logged, then killed before its checkpoint, then run again on resume) counts once: the last."""
    valid = list({r["step"]: r for r in rows if "valid_loss" in r}.values())
    valid.sort(key=lambda r: r["step"])
    keep = [r for r in valid if r["step"] % every == 0]
    if valid and (not keep or keep[-1] is not valid[-1]):
        keep.append(valid[-1])
    return [(r["step"], r["tokens"], r["valid_loss"]) for r in keep]


@torch.inference_mode()
def raw_samples(model_dir: Path, n: int = 10, seed: int = 0) -> list[str]:
    """Unconditioned samples: the model starts from <bos> and chooses form, title and poem itself."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    torch.manual_seed(seed)
    x = torch.tensor([[tok.bos_token_id]] * n)
    out = model.generate(x, do_sample=True, temperature=0.8, top_p=0.95, max_new_tokens=120,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    res = []
    for row in out:
        s = tok.decode(row[1:], skip_special_tokens=False).split("<eos>")[0].replace("<pad>", "")
        res.append(s)
    return res


def write_base_card(run_dir: Path, model_dir: Path, dataset_dir: Path, n_samples: int = 10,
                    compare: Path | None = Path("runs/compare_arch.json"), adapter: Path | None = None,
                    sweep: Path | None = Path("docs/scaling-sweep.md")) -> None:
    """README.md (and loss.png) of an exported base; with `adapter`, also one poem per request kind."""
    lines = (run_dir / "metrics.jsonl").read_text("utf-8").splitlines()
    start = json.loads(lines[0])
    rows = read_metrics(run_dir / "metrics.jsonl")
    cfg = start["config"]
    last = rows[-1]
    valid = [r for r in rows if "valid_loss" in r]
    hours = (rows[-1]["time"] - rows[0]["time"]) / 3600
    tail = rows[-50:]
    train_loss = sum(r["train_loss"] for r in tail) / len(tail)
    man = json.loads((dataset_dir / "manifest.json").read_text("utf-8"))
    m = cfg["model"]
    samples = raw_samples(model_dir, n_samples)
    rt = start.get("runtime", {})
    precision = "bf16 autocast" if rt.get("bf16", cfg.get("bf16", True)) else "fp32"
    if rt.get("compile"):
        precision += ", torch.compile"
    hardware = f"{rt.get('device', 'cpu')}".split(":")[0].upper()
    restarts = ""
    for r in cfg.get("resumes", []):
        restarts += (f"\n| restart | at step {r['step']:,} from committed weights ({r['source']}, {r['at']}): fresh "
                     f"optimizer, {r['rewarm_steps']}-step LR re-warm-up |")
    valid_txt = (f"{valid[-1]['valid_loss']:.3f} (perplexity {math.exp(valid[-1]['valid_loss']):.1f})"
                 if valid else "not measured yet")
    cmp_table = ""
    if compare is not None and Path(compare).exists():
        cmp = json.loads(Path(compare).read_text())
        cmp_table = "\n".join(f"| {c['arch']} | {c['params']:,} | {c['tokens']:,} | {c['seconds']:.0f} s | "
                              f"{c['tok_s']:,} | {c['valid_loss']:.3f} |" for c in cmp)
        cmp_table = ("\n## Architecture choice\n\nSame size, same data, same steps (a short equal-budget run):\n\n"
                     "| arch | params | tokens | time | tokens/s | valid loss |\n|---|---:|---:|---:|---:|---:|\n"
                     + cmp_table + "\n")
    sample_md = "\n".join(f"{i + 1}. `{re.sub(r'`', '', s)}`" for i, s in enumerate(samples))
    flops = 6 * start["params"] * last["tokens"]  # forward + backward, the usual 6·N·D
    epochs_txt = (f"; {last['tokens'] / start['epoch_tokens']:.1f} epochs of the train split"
                  if start.get("epoch_tokens") else "")
    curve = "\n".join(f"| {st:,} | {tk / 1e6:.1f}M | {v:.3f} |" for st, tk, v in valid_curve(rows))
    curve_md = f"| step | tokens | valid loss |\n|---:|---:|---:|\n{curve}\n" if curve else ""
    sweep_md = ""
    if sweep is not None and Path(sweep).exists():
        sweep_md = ("\n## The sweep that chose the size\n\nAn equal-budget sweep on this machine "
                    "(`python -m training.sweep`; the reasoning is in docs/training.md):\n\n"
                    + Path(sweep).read_text("utf-8").strip() + "\n")
    kinds_md = ""
    if adapter is not None:
        kinds_md = "\n" + kinds_section(model_dir, adapter)
    text = f"""# Shiren base poetry GPT

A decoder-only GPT ({m['arch']}: {'RoPE, RMSNorm, SwiGLU' if m['arch'] == 'llama' else 'learned positions, LayerNorm, GELU'}) pretrained from scratch
on the classical Chinese poetry corpus (npm `chinese-poetry` 2.0.1: 全唐诗, 全宋诗, 全宋词, 五代词), simplified script.
Loads with `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` (character tokenizer).

| | |
|---|---|
| parameters | {start['params']:,} ({m['n_layer']} layers, {m['n_head']} heads, d={m['n_embd']}, context {m['block_size']}, tied embeddings) |
| vocabulary | {m['vocab_size']:,} (chars with train frequency ≥ {man.get('vocab_min_freq')}, plus control tokens) |
| data | train split: {man['poems']['train']:,} poems, {man['chars']['train']:,} chars; each as a header (form, 词牌, title) + poem |
| tokens seen | {last['tokens']:,} ({last['step']:,} steps × {cfg['batch_size']} × {m['block_size']}{epochs_txt}) |
| compute | {flops:.1e} FLOPs (6 × parameters × tokens) |
| wall time | {hours:.2f} h{' (since the last restart)' if cfg.get('resumes') else ''} on {platform.machine()} {hardware}, {rt.get('threads', 2)} threads, {precision} |
| throughput | {last['tok_s']:,} tokens/s (last) |
{restarts.lstrip(chr(10)) + chr(10) if restarts else ''}| optimiser | AdamW (β 0.9/0.95, wd {cfg['weight_decay']}), peak lr {cfg['lr']}, warm-up {cfg['warmup_steps']} + cosine to {cfg['min_lr_ratio']}×, clip {cfg['grad_clip']} |
| final train loss | {train_loss:.3f} (mean of last 50 steps; perplexity {math.exp(train_loss):.1f}) |
| final valid loss | {valid_txt} |
| weights | `model.safetensors` in bf16 |
| corpus clauses | `corpus_lines.npy`: CRC-32 of every clause in the corpus, so generation can avoid copying lines |

![loss](loss.png)

{curve_md}{sweep_md}{cmp_table}{kinds_md}
## Ten raw samples

Unconditioned (from `<bos>` only; temperature 0.8, top-p 0.95), exactly as sampled:

{sample_md}

## Retrain

```bash
shiren data prepare
shiren train pretrain --arch {m['arch']} --n-layer {m['n_layer']} --n-embd {m['n_embd']} --block-size {m['block_size']} \\
  --batch {cfg['batch_size']} --lr {cfg['lr']} --warmup {cfg['warmup_steps']} --max-steps {cfg['max_steps']}
shiren train export --out models/base && shiren train card
```
"""
    write_text(model_dir / "README.md", text)
    import shutil

    if (run_dir / "loss.png").exists():
        shutil.copyfile(run_dir / "loss.png", model_dir / "loss.png")
