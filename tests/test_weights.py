"""core.weights (Llama weights, LoRA merge and tokenizer without transformers/peft) against transformers + peft."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from core.adapters import base_ref
from core.poet import ModelLoadError, Poet
from core.types import PoemRequest
from core.weights import CharTokenizer, WeightsError, load_llama, merge_lora
from training.model import GPTConfig, build_model

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _save_base(out: Path, tok, n_embd: int, seed: int, block_size: int = 64) -> Path:
    torch.manual_seed(seed)
    m = build_model(GPTConfig(arch="llama", vocab_size=len(tok), n_layer=2, n_head=4, n_embd=n_embd,
                              block_size=block_size)).eval()
    m.save_pretrained(str(out))  # safetensors (the only format transformers 5 writes)
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A tiny Llama and the real tokenizer format, as `save_pretrained` writes them."""
    from core.testing import tiny_model_and_tokenizer

    _, tok = tiny_model_and_tokenizer()
    return _save_base(tmp_path_factory.mktemp("base"), tok, n_embd=64, seed=0)


@pytest.fixture(scope="module")
def other_base(tmp_path_factory) -> Path:
    """A smaller model (d=32) with the same tokenizer: its adapters do not fit `base`."""
    from core.testing import tiny_model_and_tokenizer

    _, tok = tiny_model_and_tokenizer()
    return _save_base(tmp_path_factory.mktemp("other"), tok, n_embd=32, seed=1)


def _hf_base(base: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).eval()


def _make_adapter(base: Path, out: Path, seed: int = 0, **lora_kw) -> Path:
    """A peft LoRA adapter with random B matrices (peft starts them at zero: a no-op merge)."""
    from peft import LoraConfig, get_peft_model

    kw = dict(r=4, lora_alpha=8, target_modules=TARGETS) | lora_kw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = get_peft_model(_hf_base(base), LoraConfig(**kw))
    g = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
                n += 1
    assert n == 2 * len(TARGETS)
    pm.save_pretrained(str(out))
    # name the base it was made on, as Shiren's training does (core.adapters.base_ref)
    cfg = json.loads((out / "adapter_config.json").read_text("utf-8"))
    cfg["base_model_name_or_path"] = base_ref(base)
    (out / "adapter_config.json").write_text(json.dumps(cfg), "utf-8")
    return out


def _peft_merged(base: Path, adapter: Path):
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PeftModel.from_pretrained(_hf_base(base), str(adapter)).merge_and_unload().eval()


def _assert_merge_matches_peft(base: Path, adapter: Path) -> None:
    lw = load_llama(base, adapter)
    merged = _peft_merged(base, adapter)
    ref = merged.state_dict()
    ours = lw.state_dict
    # model.safetensors holds the tied lm_head once, as the embedding.
    assert set(ref) - set(ours) <= {"lm_head.weight"} and set(ours) <= set(ref)
    base_sd = load_llama(base).state_dict
    changed = 0
    for k, v in ref.items():
        mine = ours.get(k, ours["model.embed_tokens.weight"])
        assert mine.dtype == torch.float32 and mine.shape == v.shape, k
        assert torch.allclose(mine, v.float(), rtol=0, atol=1e-5), (k, float((mine - v).abs().max()))
        changed += bool((ours.get(k, mine) - base_sd.get(k, base_sd["model.embed_tokens.weight"])).abs().max() > 1e-2)
    assert changed == 2 * len(TARGETS)  # every targeted matrix of both layers really moved
    x = torch.tensor([[2, 6, 12, 33, 72, 4, 768, 100, 68, 39, 151], [2, 7, 4, 100, 101, 102, 103, 104, 105, 106, 107]])
    with torch.no_grad():
        want = merged(input_ids=x).logits
        got = lw.hf_model()(input_ids=x).logits
    assert torch.allclose(got, want, rtol=0, atol=1e-5), float((got - want).abs().max())


def test_merge_lora_equals_peft_merge(base, tmp_path):
    _assert_merge_matches_peft(base, _make_adapter(base, tmp_path / "adapter"))


def test_merge_rslora_equals_peft_merge(base, tmp_path):
    adapter = _make_adapter(base, tmp_path / "adapter", seed=1, use_rslora=True)
    assert json.loads((adapter / "adapter_config.json").read_text("utf-8"))["use_rslora"] is True
    _assert_merge_matches_peft(base, adapter)


def test_merge_rank_and_alpha_patterns_equal_peft_merge(base, tmp_path):
    adapter = _make_adapter(base, tmp_path / "adapter", seed=2, rank_pattern={"down_proj": 2},
                            alpha_pattern={"o_proj": 16})
    _assert_merge_matches_peft(base, adapter)


def test_merge_regex_rank_pattern_equals_peft_merge(base, tmp_path):
    adapter = _make_adapter(base, tmp_path / "adapter", seed=3, rank_pattern={r"layers\.1\.mlp\.down_proj": 2})
    _assert_merge_matches_peft(base, adapter)


def test_poet_load_with_adapter_writes_like_peft(base, tmp_path):
    """Poet.load (no transformers, no peft) and a poet over peft's merged model write the same poems."""
    from transformers import AutoTokenizer

    adapter = _make_adapter(base, tmp_path / "adapter", seed=4)
    fast = Poet.load(model_dir=base, adapter=adapter, critic=None, weights="bf16")  # the merge itself, unquantized
    ref = Poet(_peft_merged(base, adapter), AutoTokenizer.from_pretrained(str(base)), conditioned=True)
    try:
        assert isinstance(fast.tokenizer, CharTokenizer)
        req = PoemRequest(form="五绝", title="春夜", seed=5)
        assert [p.text for p in fast.write(req)] == [p.text for p in ref.write(req)]
    finally:
        fast.close()
        ref.close()


# ---- bad adapters -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_adapter(base, tmp_path_factory) -> Path:
    return _make_adapter(base, tmp_path_factory.mktemp("good") / "adapter", seed=5)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(adapter: Path, **changes) -> Path:
    cfg = json.loads((adapter / "adapter_config.json").read_text("utf-8"))
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (adapter / "adapter_config.json").write_text(json.dumps(cfg), "utf-8")
    return adapter


def test_adapter_without_config(base, good_adapter, tmp_path):
    bad = _copy(good_adapter, tmp_path / "bad")
    (bad / "adapter_config.json").unlink()
    with pytest.raises(WeightsError, match=r"cannot read .*adapter_config\.json"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match="not a LoRA adapter folder"):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_with_unreadable_config(base, good_adapter, tmp_path):
    bad = _copy(good_adapter, tmp_path / "bad")
    (bad / "adapter_config.json").write_text("{not json", "utf-8")
    with pytest.raises(WeightsError, match=r"cannot read .*adapter_config\.json"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match=r"cannot read .*adapter_config\.json"):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_of_another_peft_type(base, good_adapter, tmp_path):
    bad = _edit_config(_copy(good_adapter, tmp_path / "bad"), peft_type="IA3")
    with pytest.raises(WeightsError, match="is a IA3 adapter; Shiren loads LoRA adapters"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match="IA3 adapter"):
        Poet.load(model_dir=base, adapter=bad)


def test_dora_adapter_is_refused(base, good_adapter, tmp_path):
    bad = _edit_config(_copy(good_adapter, tmp_path / "bad"), use_dora=True)
    with pytest.raises(WeightsError, match="DoRA"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match="DoRA"):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_of_another_model_size(base, other_base, tmp_path):
    bad = _make_adapter(other_base, tmp_path / "bad", seed=6)  # d=32 matrices; base is d=64
    _assert_merge_matches_peft(other_base, bad)  # a fine adapter, for its own model
    with pytest.raises(WeightsError, match=r"does not fit this base model \(\w+_proj: \(\d+, \d+\) vs \(\d+, \d+\)\)"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match="does not fit this base model"):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_for_modules_the_model_lacks(base, good_adapter, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _copy(good_adapter, tmp_path / "bad")
    sd = load_file(str(bad / "adapter_model.safetensors"))
    sd = {k.replace("layers.1.", "layers.7."): v for k, v in sd.items()}
    save_file(sd, str(bad / "adapter_model.safetensors"))
    with pytest.raises(WeightsError, match=r"does not fit this base model \(model\.layers\.7\."):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match="does not fit this base model"):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_with_non_lora_tensors_or_none(base, good_adapter, tmp_path):
    from safetensors.torch import load_file, save_file

    bad = _copy(good_adapter, tmp_path / "bad")
    sd = load_file(str(bad / "adapter_model.safetensors"))
    save_file(sd | {"base_model.model.lm_head.weight": torch.zeros(3, 3)}, str(bad / "adapter_model.safetensors"))
    with pytest.raises(WeightsError, match="unexpected tensor 'base_model.model.lm_head.weight'"):
        load_llama(base, bad)
    save_file({}, str(bad / "adapter_model.safetensors"))
    with pytest.raises(WeightsError, match="holds no LoRA weights"):
        load_llama(base, bad)
    a_only = {k: v for k, v in sd.items() if ".lora_A." in k}
    save_file(a_only, str(bad / "adapter_model.safetensors"))
    with pytest.raises(WeightsError, match="does not fit this base model"):
        load_llama(base, bad)


def test_adapter_without_weights_file(base, good_adapter, tmp_path):
    bad = _copy(good_adapter, tmp_path / "bad")
    (bad / "adapter_model.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"cannot read .*adapter_model\.safetensors"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError, match="not a LoRA adapter folder"):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_with_corrupt_weights_file(base, good_adapter, tmp_path):
    bad = _copy(good_adapter, tmp_path / "bad")
    (bad / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(WeightsError, match=r"cannot read .*adapter_model\.safetensors"):
        load_llama(base, bad)
    with pytest.raises(ModelLoadError):
        Poet.load(model_dir=base, adapter=bad)


def test_adapter_config_without_r_uses_peft_defaults(base, tmp_path):
    adapter = _make_adapter(base, tmp_path / "adapter", seed=7, r=8, lora_alpha=8)
    _edit_config(adapter, r=None, lora_alpha=None)
    _assert_merge_matches_peft(base, adapter)


def test_merge_lora_in_place_on_a_state_dict(base, good_adapter):
    sd = load_llama(base).state_dict
    before = {k: v.clone() for k, v in sd.items()}
    assert merge_lora(sd, good_adapter) is None
    assert torch.equal(sd["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(sd[q], before[q], atol=1e-3)
    assert torch.equal(sd[q], load_llama(base, good_adapter).state_dict[q])


def test_bad_model_dir(tmp_path, base):
    with pytest.raises(WeightsError, match="cannot load the model"):
        load_llama(tmp_path)
    broken = _copy(base, tmp_path / "broken")
    cfg = json.loads((broken / "config.json").read_text("utf-8"))
    (broken / "config.json").write_text(json.dumps(cfg | {"model_type": "gpt2"}), "utf-8")
    with pytest.raises(WeightsError, match="needs a llama model"):
        load_llama(broken)
    with pytest.raises(ModelLoadError, match="no model at"):
        Poet.load(model_dir=tmp_path / "nowhere", adapter=None)


# ---- tokenizer ------------------------------------------------------------------------------------

TEXTS = [
    "<bos><七绝><题>春夜<sep>床前明月光",
    "<bos><七绝><题>春夜<sep>床前明月光，疑是地上霜。举头望明月，低头思故乡。<eos>",
    "<bos><词><牌>浣溪沙<题>春<关键>明月、故乡<藏头>春夏<首句>床前明月光<sep>",
    "<bos><五律><sep>",
    "床前 明月光abc𠀀<unk><pad>",  # unknown characters, a space, special tokens inside the text
    "",
]


def test_char_tokenizer_equals_autotokenizer(base, tmp_path):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(base))
    ct = CharTokenizer(base)
    assert len(ct) == len(hf)
    assert ct.get_vocab() == hf.get_vocab()
    assert (ct.bos_token_id, ct.eos_token_id, ct.pad_token_id) == (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id)
    assert None not in (ct.bos_token_id, ct.eos_token_id, ct.pad_token_id)
    for text in TEXTS:
        ids = ct(text, add_special_tokens=False)["input_ids"]
        assert ids == hf(text, add_special_tokens=False)["input_ids"], text
        assert ct(text)["input_ids"] == ids  # Shiren's default
        assert hf(text)["input_ids"] == ids  # no post-processor adds <bos>/<eos>
        for skip in (False, True):
            assert ct.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip), text
    assert ct("<bos><七绝><题>春夜<sep>床前明月光")["input_ids"][:2] == [ct.bos_token_id, ct.get_vocab()["<七绝>"]]
    assert ct.decode(ct(TEXTS[1])["input_ids"]) == TEXTS[1]
    # Without tokenizer_config.json the special tokens fall back to Shiren's own names.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(base / "tokenizer.json", bare / "tokenizer.json")
    ct2 = CharTokenizer(bare)
    assert (ct2.bos_token_id, ct2.eos_token_id, ct2.pad_token_id) == (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id)


# ---- an adapter only loads on the base it was trained on (core.adapters) ----------------------------

def _same_shape_base(tmp_path: Path) -> Path:
    """Another base of exactly `base`'s shape (different weights): its adapters' tensors would fit."""
    from core.testing import tiny_model_and_tokenizer

    _, tok = tiny_model_and_tokenizer()
    return _save_base(tmp_path / "retrained", tok, n_embd=64, seed=9)


def test_adapter_of_another_base_is_refused(base, good_adapter, tmp_path):
    from core.adapters import adapter_base, base_id, base_mismatch

    new = _same_shape_base(tmp_path)
    assert base_id(new) != base_id(base) and adapter_base(good_adapter) == base_id(base)
    assert base_mismatch(good_adapter, base) == ""
    with pytest.raises(ModelLoadError, match=rf"trained on {base_id(base)}, not on this base model \({base_id(new)}\)"):
        Poet.load(model_dir=new, adapter=good_adapter)
    legacy = _edit_config(_copy(good_adapter, tmp_path / "legacy"), base_model_name_or_path="shiren/base")
    with pytest.raises(ModelLoadError, match="names no base model version"):
        Poet.load(model_dir=base, adapter=legacy)


def test_database_adapter_of_an_earlier_base_is_retired(base, good_adapter, tmp_path, monkeypatch):
    from core.adapters import resolve_adapter
    from db.store import Store

    url = f"sqlite:///{tmp_path / 'shiren.db'}"
    with Store(url) as store:
        store.add_adapter("fb-1", str(good_adapter), None, {}, status="active")
    assert resolve_adapter(database_url=url, model_dir=base) == good_adapter  # its own base: used
    new = _same_shape_base(tmp_path)
    assert resolve_adapter(database_url=url, model_dir=new) is None  # not on another base
    with Store(url, upgrade=False) as store:
        assert store.active_adapter() is None
        assert [a.status for a in store.list_adapters()] == ["retired"]


def test_shipped_adapter_names_the_shipped_base():
    from core import paths
    from core.adapters import base_mismatch, shipped_default

    adapter = shipped_default()
    assert adapter is not None
    assert base_mismatch(adapter, paths.shipped_models_dir() / "base") == ""


def test_merge_onto_a_bf16_base_is_rounded_to_bf16_and_the_fast_path_still_equals_the_reference(base, tmp_path):
    """The shipped base is saved in bf16: merged matrices are rounded back to bf16 precision (as peft's
    merge on a bf16 model), so the C kernel streams them as bf16, and the reference path (the HF model
    built from the same numbers) still writes the same poems under a seed."""
    from safetensors.torch import load_file, save_file

    b16 = _copy(base, tmp_path / "b16")
    sd = load_file(str(b16 / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in sd.items()}, str(b16 / "model.safetensors"),
              metadata={"format": "pt"})
    adapter = _make_adapter(b16, tmp_path / "adapter", seed=5)
    exact = load_llama(b16).state_dict  # no adapter: the bf16 values, held as float32
    merge_lora(exact, adapter)  # float32 merge, unrounded
    lw = load_llama(b16, adapter)
    assert lw.saved_dtype == torch.bfloat16
    q = "model.layers.0.self_attn.q_proj.weight"
    for k, v in lw.state_dict.items():
        assert v.dtype == torch.float32 and torch.equal(v.to(torch.bfloat16).float(), v), k
        # within half a bf16 ulp of the float32 merge
        assert torch.allclose(v, exact[k], rtol=2 ** -8, atol=0), k
    assert not torch.equal(lw.state_dict[q], exact[q])  # the rounding did happen (else this test proves nothing)
    poet = Poet.load(b16, adapter=adapter, critic=None, weights="bf16")
    assert poet.engine is not None
    if hasattr(poet.engine.fast, "layer_dtype"):  # the C kernel (the PyTorch forward keeps float32)
        assert poet.engine.fast.layer_dtype == torch.bfloat16
    for seed in range(3):
        req = PoemRequest(form="五绝", seed=seed)
        assert [p.text for p in poet.write(req)] == [p.text for p in poet.write_reference(req)]


def test_int8_weights_one_definition_for_every_path(base, good_adapter):
    """Served in int8 (core.quant): the layer projections are int8 codes × row scales; the state dict
    (hence the HF reference model) holds exactly those dequantized values, the C kernel streams the
    codes, and a seed gives the same poems on the fast and the reference path."""
    from core.quant import dequantize, is_layer_linear

    bf = load_llama(base, good_adapter)
    q8 = load_llama(base, good_adapter, weights="int8")
    layer = [k for k in q8.state_dict if is_layer_linear(k)]
    assert layer and set(q8.quantized) == set(layer)
    for k in layer:
        codes, scale = q8.quantized[k]
        assert codes.dtype == torch.int8 and int(codes.abs().max()) <= 127
        assert torch.equal(q8.state_dict[k], dequantize(codes, scale))
        # at most half a step of the row's scale from the unquantized weight
        assert float(((q8.state_dict[k] - bf.state_dict[k]).abs() / scale[:, None]).max()) <= 0.5 + 1e-4
    assert torch.equal(q8.state_dict["model.embed_tokens.weight"], bf.state_dict["model.embed_tokens.weight"])
    poet = Poet.load(base, adapter=good_adapter, critic=None, weights="int8")
    if hasattr(poet.engine.fast, "layer_dtype"):  # the C kernel
        assert poet.engine.fast.layer_dtype == torch.int8
    for seed in range(3):
        req = PoemRequest(form="七绝", seed=seed)
        assert [p.text for p in poet.write(req)] == [p.text for p in poet.write_reference(req)]
    with pytest.raises(WeightsError, match="unknown weight format"):
        load_llama(base, weights="int4")


def test_card_writes_one_poem_per_request_kind(tmp_path):
    """The model card's samples: one per kind of the instruction mix, each meeting its request."""
    from core.gelv import analyze
    from core.testing import tiny_model_and_tokenizer
    from training.model_card import CARD_REQUESTS, request_samples
    from training.sft_data import DEFAULT_MIX, clauses

    _, tok = tiny_model_and_tokenizer()
    base = _save_base(tmp_path / "base", tok, n_embd=32, seed=0, block_size=256)  # room for a 七律 and a 词
    adapter = _make_adapter(base, tmp_path / "adapter", seed=6)
    assert sorted(k for k, _ in CARD_REQUESTS) == sorted(k for k, _ in DEFAULT_MIX.shares)
    samples, how = request_samples(base, adapter)
    assert how == "plain sampling"  # no amateur fits this tiny base's vocabulary
    assert [k for k, _, _ in samples] == [k or "form alone" for k, _ in CARD_REQUESTS]
    for (_, req), (_, said, poem) in zip(CARD_REQUESTS, samples, strict=True):
        assert said.startswith(req.form) and (not req.title or req.title in said)
        if req.acrostic:
            assert "".join(c[0] for c in clauses(poem)[: len(req.acrostic)]) == req.acrostic
        if req.first_line:
            assert poem.startswith(req.first_line)
        assert all(k in poem for k in req.keywords)
        verdict = analyze(poem, req.form, req.cipai or None)
        assert verdict.format_ok and verdict.rhyme_ok, (said, poem)
    # the section alone, rewritten in place in an existing card: the rest of the card stays
    from training.model_card import KINDS_HEADING, refresh_kinds_section

    (base / "README.md").write_text(f"# card\n\nintro\n\n{KINDS_HEADING}\n\nold rows\n\n## After\n\ntail\n", "utf-8")
    text = refresh_kinds_section(base, adapter).read_text("utf-8")
    assert text.startswith("# card\n\nintro\n\n" + KINDS_HEADING) and text.endswith("\n\n## After\n\ntail\n")
    assert "old rows" not in text and samples[0][2].replace("\n", " / ") in text and "plain sampling" in text
    (base / "README.md").write_text("# card without the section\n", "utf-8")
    with pytest.raises(ValueError, match="no '## One poem"):
        refresh_kinds_section(base, adapter)
