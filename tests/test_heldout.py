"""Held-out loss: nats per poem token, the header as context only, the same number batched or not."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.testing import tiny_model_and_tokenizer
from training.heldout import example_nll, heldout_losses, pretrain_examples

ROWS = [
    {"id": "a", "form": "五绝", "title": "静夜思", "cipai": "", "text": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"},
    {"id": "b", "form": "七绝", "title": "早发白帝城", "cipai": "",
     "text": "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。"},
    {"id": "c", "form": "词", "title": "浣溪沙", "cipai": "浣溪沙",
     "text": "一曲新词酒一杯，去年天气旧亭台。夕阳西下几时回。\n无可奈何花落去，似曾相识燕归来。小园香径独徘徊。"},
]


def test_nll_counts_poem_tokens_only_and_batching_is_exact():
    model, tok = tiny_model_and_tokenizer(n_chars=800)
    ex = pretrain_examples(ROWS)
    assert ex[2][0] == "<bos><词><牌>浣溪沙<sep>"  # a 词 titled by its 词牌 has no title field
    prompt, body = ex[0]
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    b = tok(body, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + b])).logits[0, len(p) - 1 : -1]
    want = F.cross_entropy(logits, torch.tensor(b), reduction="sum").item()
    one = example_nll(model, tok, ex[:1])
    assert one["tokens"] == len(b) == 25  # 20 characters, 4 marks, <eos>
    assert math.isclose(one["nll"], want, rel_tol=1e-4)
    batched = example_nll(model, tok, ex, batch_size=3)
    single = [example_nll(model, tok, [e], batch_size=1) for e in ex]
    assert math.isclose(batched["nll"], sum(s["nll"] for s in single), rel_tol=1e-4)
    assert batched["tokens"] == sum(s["tokens"] for s in single)
    assert math.isclose(batched["ppl"], math.exp(batched["nats_per_token"]))
    # an untrained model is near uniform over the vocabulary
    assert abs(batched["nats_per_token"] - math.log(len(tok))) < 1.0


def test_heldout_table_has_both_formats_and_models():
    model, tok = tiny_model_and_tokenizer(n_chars=800)
    other, _ = tiny_model_and_tokenizer(n_chars=800, seed=1)
    t = heldout_losses(model, other, tok, ROWS * 4, instruction_examples=5, n_cipai=60)
    assert set(t) == {"valid (pretraining format)", "valid (instruction format)"}
    for per in t.values():
        assert set(per) == {"base", "adapter"}
    assert t["valid (pretraining format)"]["base"]["poems"] == 12
    assert t["valid (instruction format)"]["adapter"]["poems"] <= 5
    assert set(heldout_losses(model, None, tok, ROWS)["valid (instruction format)"]) == {"base"}
