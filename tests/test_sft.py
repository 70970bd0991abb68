"""LoRA SFT on a tiny model: data building, loss falls, the adapter folder loads back with peft."""

from __future__ import annotations

import json
import random

import pytest
import torch

from core.prompt import ACROSTIC, FIRST_LINE, SEP
from core.testing import tiny_model_and_tokenizer
from training.sft import (
    BatchOrder,
    SFTConfig,
    collate,
    encode,
    length_grouped_batches,
    save_adapter,
    save_bf16_copy,
    train_sft,
)
from training.sft_data import build_examples, make_example

ROWS = [
    {"form": "五绝", "title": "静夜思", "cipai": "", "text": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"},
    {"form": "七绝", "title": "早发白帝城", "cipai": "",
     "text": "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。"},
    {"form": "五律", "title": "春望", "cipai": "",
     "text": "国破山河在，城春草木深。\n感时花溅泪，恨别鸟惊心。\n烽火连三月，家书抵万金。\n白头搔更短，浑欲不胜簪。"},
    {"form": "古体", "title": "x", "cipai": "", "text": "一二三，四五六。"},
]


def test_examples_satisfy_their_requests():
    rng = random.Random(0)
    seen_acrostic = seen_first = False
    for _ in range(60):
        for row in ROWS[:3]:
            prompt, completion = make_example(row, rng)
            body = completion.removesuffix("<eos>")
            assert prompt.endswith(SEP) and body == row["text"].replace("\n", "")
            if ACROSTIC in prompt:
                heads = prompt.split(ACROSTIC)[1].split("<")[0]
                assert body.startswith(heads[0]) and all(h in body for h in heads)
                seen_acrostic = True
            if FIRST_LINE in prompt:
                first = prompt.split(FIRST_LINE)[1].split("<")[0]
                assert body.startswith(first)
                seen_first = True
    assert seen_acrostic and seen_first
    assert make_example(ROWS[3], rng) is None  # 古体 is not a writable form


def test_labels_mask_prompt_and_padding():
    _, tok = tiny_model_and_tokenizer(n_chars=500)
    ex = build_examples(ROWS, seed=0)
    x, y = collate(encode(ex[:2], tok), tok.pad_token_id, 128)
    for i, (prompt, _completion) in enumerate(ex[:2]):
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert (y[i, :n_prompt] == -100).all()
        assert (y[i, n_prompt:][x[i, n_prompt:] != tok.pad_token_id] != -100).all()
    assert (y[x == tok.pad_token_id] == -100).all()


def _tiny_sft(out, max_steps: int, eval_every: int):
    """A tiny model fine-tuned on three poems and its adapter saved to `out`: (peft model, tokenizer, history)."""
    model, tok = tiny_model_and_tokenizer(n_chars=800, n_embd=64, n_layer=2)
    ex = build_examples(ROWS[:3] * 8, seed=1)
    # Three distinct poems: grouped by length, each batch would hold one poem's copies (a toy artefact;
    # the instruction set's batches hold 32 poems), so these tests batch them as they come.
    cfg = SFTConfig(max_steps=max_steps, batch_size=8, lr=1e-2, warmup_steps=2, eval_every=eval_every, bf16=False,
                    group_by_length=False)
    peft_model, hist = train_sft(model, tok, ex, ex[:8], cfg, progress=False)
    save_adapter(peft_model, out, "tiny-base", cfg, hist, {"train_examples": len(ex), "valid_examples": 8})
    return peft_model, tok, hist


def test_lora_loss_falls_and_adapter_roundtrips(tmp_path):
    from peft import PeftModel

    out = tmp_path / "adapters" / "test"
    peft_model, tok, hist = _tiny_sft(out, max_steps=40, eval_every=20)
    assert hist["valid_loss_after"] < hist["valid_loss_before"] - 0.5
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny-base"
    base2, _ = tiny_model_and_tokenizer(n_chars=800, n_embd=64, n_layer=2)
    loaded = PeftModel.from_pretrained(base2, str(out)).eval()
    x = torch.tensor([tok("<bos><五绝><sep>床前明月光", add_special_tokens=False)["input_ids"]])
    peft_model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=x).logits, peft_model(input_ids=x).logits, atol=1e-5)


def test_bf16_copy_of_an_adapter_loads_and_writes_as_the_fp32_one_up_to_rounding(tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file

    src, dst = tmp_path / "fp32", tmp_path / "bf16"
    _, tok, _ = _tiny_sft(src, max_steps=10, eval_every=10)
    save_bf16_copy(src, dst)
    a, b = load_file(str(src / "adapter_model.safetensors")), load_file(str(dst / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(t.dtype == torch.bfloat16 for t in b.values())
    assert all(torch.equal(a[k].to(torch.bfloat16), b[k]) for k in a)
    assert (dst / "adapter_model.safetensors").stat().st_size < 0.6 * (src / "adapter_model.safetensors").stat().st_size
    for name in ("adapter_config.json", "README.md", "training.json"):
        assert (dst / name).read_bytes() == (src / name).read_bytes()
    x = torch.tensor([tok("<bos><五绝><sep>床前明月光", add_special_tokens=False)["input_ids"]])
    logits = []
    for d in (src, dst):
        base, _ = tiny_model_and_tokenizer(n_chars=800, n_embd=64, n_layer=2)
        with torch.no_grad():
            logits.append(PeftModel.from_pretrained(base, str(d)).eval()(input_ids=x).logits.float())
    assert not torch.equal(logits[0], logits[1])  # rounded, so not bit-equal ...
    assert torch.allclose(logits[0], logits[1], atol=0.05)  # ... but the same model


def test_request_mix_follows_its_shares_and_title_alone_leads():
    from collections import Counter

    from core.prompt import header
    from training.sft_data import DEFAULT_MIX, RequestMix

    assert max(DEFAULT_MIX.shares, key=lambda kv: kv[1])[0] == "title"
    rng = random.Random(1)
    row = ROWS[1]  # a titled 五律
    kinds = Counter()
    for _ in range(4000):
        prompt, _ = make_example(row, rng)
        kinds[prompt == header(row["form"], title=row["title"])] += 1
    assert abs(kinds[True] / 4000 - dict(DEFAULT_MIX.shares)["title"]) < 0.03  # the title alone, ~40%
    with pytest.raises(ValueError, match="sum to 1"):
        RequestMix((("title", 0.5),))
    with pytest.raises(ValueError, match="unknown request kind"):
        RequestMix((("rhyme", 1.0),))


def test_request_mix_measured_from_stored_requests():
    from training.sft_data import RequestMix

    reqs = [{"title": "春夜"}] * 150 + [{"title": "秋", "keywords": ["月"]}] * 30 + [{"acrostic": "春夏秋冬"}] * 20
    assert RequestMix.from_requests(reqs[:199]) is None  # too few to trust
    mix = dict(RequestMix.from_requests(reqs).shares)
    assert mix == {"title": 0.75, "title+keywords": 0.15, "acrostic": 0.1}


def test_store_lists_request_conditions(tmp_path):
    from core.types import PoemRequest
    from db.store import Store

    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        uid = store.ensure_user("telegram", "1")
        store.record_poems(uid, PoemRequest(form="七绝", title="春夜", keywords=("明月",), seed=1), [])
        assert store.request_conditions() == [{"title": "春夜", "keywords": ["明月"], "acrostic": "", "first_line": ""}]


def test_an_interrupted_sft_run_resumes_exactly(tmp_path):
    """Killed after step 3 (a checkpoint every step), then run again: the same LoRA weights and losses
    as a run that never stopped; a checkpoint of other settings is refused."""
    from peft import get_peft_model_state_dict

    from training.checkpoint import CheckpointError

    ex = build_examples(ROWS[:3] * 8, seed=1)
    # 24 examples in batches of 4: step 7 on is the second epoch, with its own grouping.
    cfg = SFTConfig(max_steps=9, batch_size=4, lr=1e-2, warmup_steps=1, eval_every=3, bf16=False, ckpt_minutes=0)

    def fresh():
        return tiny_model_and_tokenizer(n_chars=800, n_embd=32, n_layer=1)

    m, tok = fresh()
    straight, h1 = train_sft(m, tok, ex, ex[:4], cfg, progress=False)

    class Killed(Exception):
        pass

    def kill_at_4(row):
        if row.get("step") == 4:
            raise Killed

    ckpt = tmp_path / "ckpt"
    m, tok = fresh()
    with pytest.raises(Killed):
        train_sft(m, tok, ex, ex[:4], cfg, progress=False, log=kill_at_4, ckpt_dir=ckpt)
    assert json.loads((ckpt / "sft_run.json").read_text())["step"] == 3
    m, tok = fresh()
    resumed, h2 = train_sft(m, tok, ex, ex[:4], cfg, progress=False, ckpt_dir=ckpt)
    assert h2["resumes"] == [3]
    a, b = get_peft_model_state_dict(straight), get_peft_model_state_dict(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in h1["steps"]] == [r["train_loss"] for r in h2["steps"]]
    assert h1["valid_loss_after"] == h2["valid_loss_after"]
    m, tok = fresh()
    with pytest.raises(CheckpointError, match="another SFT run.*lr"):
        train_sft(m, tok, ex, ex[:4], SFTConfig(**{**cfg.__dict__, "lr": 5e-3}), progress=False, ckpt_dir=ckpt)


def test_length_grouped_batches_cover_every_example_once_with_little_padding():
    rng = random.Random(0)
    lengths = [rng.choice((30, 40, 70, 80)) + rng.randrange(0, 120 if rng.random() < 0.1 else 4) for _ in range(3200)]
    batches = length_grouped_batches(lengths, 32, seed=5)
    assert sorted(j for b in batches for j in b) == list(range(3200))
    assert len(batches) == 100 and all(len(b) == 32 for b in batches)

    def padded(bs):
        return sum(len(b) * max(lengths[j] for j in b) for b in bs) / sum(lengths)

    consecutive = [list(range(k, k + 32)) for k in range(0, 3200, 32)]
    assert padded(batches) < 1.05 < 1.3 < padded(consecutive)
    assert batches == length_grouped_batches(lengths, 32, seed=5)
    assert batches != length_grouped_batches(lengths, 32, seed=6)
    # the order is random, not sorted: long and short batches alternate across the epoch
    firsts = [lengths[b[0]] for b in batches]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)


def test_batch_order_draws_a_new_grouping_each_epoch():
    lengths = [i % 7 + 1 for i in range(50)]
    order = BatchOrder(lengths, 8, seed=0, group=True)
    assert order.per_epoch == 7
    epoch0 = [order(k) for k in range(7)]
    epoch1 = [order(k) for k in range(7, 14)]
    assert sorted(sum(epoch0, [])) == sorted(sum(epoch1, [])) == list(range(50))
    assert epoch0 != epoch1
    assert BatchOrder(lengths, 8, seed=0, group=True)(9) == epoch1[2]  # a resumed run sees the same batch
    assert BatchOrder(lengths, 8, seed=0, group=False)(1) == list(range(8, 16))


def test_valid_loss_is_a_mean_per_poem_token_whatever_the_batch():
    from training.sft import eval_loss, lora_model

    model, tok = tiny_model_and_tokenizer(n_chars=800, n_embd=32, n_layer=1)
    enc = encode(build_examples(ROWS, seed=2), tok)
    cfg = SFTConfig(bf16=False)
    peft = lora_model(model, cfg)
    by_one = eval_loss(peft, enc, tok.pad_token_id, SFTConfig(batch_size=1, bf16=False), torch.device("cpu"))
    by_all = eval_loss(peft, enc, tok.pad_token_id, SFTConfig(batch_size=len(enc), bf16=False), torch.device("cpu"))
    assert by_one == pytest.approx(by_all, rel=1e-5)


def test_poem_tokens_count_what_the_loss_counts():
    """The grouped loss's normaliser is built from poem_tokens: it must equal the labels collate keeps."""
    from training.sft import poem_tokens

    for p_len, c_len, max_len in [(5, 20, 192), (5, 20, 12), (5, 20, 5), (1, 3, 192), (30, 170, 192)]:
        ex = (list(range(10, 10 + p_len)), list(range(100, 100 + c_len)))
        _, y = collate([ex], pad_id=0, max_len=max_len)
        assert poem_tokens(*ex, max_len) == int((y[:, 1:] != -100).sum())
