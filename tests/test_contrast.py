"""Contrastive decoding (core.contrast): the rule, its wiring into both decoding paths, and loading."""

from __future__ import annotations

import math

import pytest
import torch
from request_support import BASE_REQUESTS, WITH_KEYWORD_CI
from test_generate import assert_guarantees

from core.contrast import IMPLAUSIBLE, Contrast, contrastive_logits, token_logprob
from core.poet import ModelLoadError, Poet
from core.testing import tiny_model_and_tokenizer
from core.weights import LoadedWeights
from training.model import GPTConfig, build_model

REQS = [*BASE_REQUESTS, WITH_KEYWORD_CI]


def _weights(model) -> LoadedWeights:
    return LoadedWeights(config=model.config.to_dict(), state_dict=dict(model.state_dict()), saved_dtype=torch.float32)


def _amateur(tok, seed: int = 7):
    torch.manual_seed(seed)
    return build_model(GPTConfig(arch="llama", vocab_size=len(tok), block_size=256, n_layer=1, n_head=2,
                                 n_embd=16)).eval()


@pytest.fixture(scope="module")
def models():
    expert, tok = tiny_model_and_tokenizer(seed=0)
    return expert, tok, _amateur(tok)


def _poet(models, contrast: Contrast | None) -> Poet:
    expert, tok, amateur = models
    return Poet(expert, tok, version="tiny-0", amateur=_weights(amateur) if contrast else None, contrast=contrast)


def test_the_rule_by_hand():
    expert = torch.tensor([[2.0, 1.0, 0.0, -5.0]])
    amateur = torch.tensor([[3.0, 0.0, 0.0, -9.0]])
    s = contrastive_logits(expert, amateur, Contrast(beta=0.5, alpha=0.1))
    # Plausible: logit ≥ 2 + ln 0.1 = −0.30 (the first three); there s = 1.5·expert − 0.5·amateur.
    assert s[0].tolist() == pytest.approx([1.5, 1.5, 0.0, -3.0 - IMPLAUSIBLE])


def test_plausibility_cut_and_order_outside_it():
    expert = torch.tensor([[0.0, math.log(0.5), math.log(0.05), math.log(0.01)]])
    amateur = torch.tensor([[5.0, 0.0, 0.0, 0.0]])
    s = contrastive_logits(expert, amateur, Contrast(beta=1.0, alpha=0.1))
    assert s[0, 1] > s[0, 0]  # the token the amateur also likes loses to the one only the expert likes
    assert (s[0, 2:] < s[0, :2].min() - IMPLAUSIBLE / 2).all()  # below the cut: far below every plausible one
    assert s[0, 2] > s[0, 3]  # … but still in order, for positions where the masks leave only those
    plain = contrastive_logits(expert, amateur, Contrast(beta=0.0, alpha=1e-30))
    assert torch.equal(plain, expert)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="β"):
        Contrast(beta=-0.1)
    with pytest.raises(ValueError, match="α"):
        Contrast(alpha=0.0)
    expert, tok = tiny_model_and_tokenizer(seed=0)
    with pytest.raises(ValueError, match="amateur"):
        Poet(expert, tok, contrast=Contrast())
    with pytest.raises(ValueError, match="amateur"):
        Poet(expert, tok).set_contrast(Contrast())


def test_token_logprob():
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    lp = token_logprob(x, torch.tensor([2, 0]))
    assert lp.tolist() == pytest.approx([3.0 - math.log(math.e + math.e**2 + math.e**3), -math.log(3.0)], abs=1e-6)


def test_no_contrast_is_plain_decoding(models):
    """β = 0 with no plausibility cut: the same poems and likelihoods as without an amateur, on both paths."""
    plain, off = _poet(models, None), _poet(models, Contrast(beta=0.0, alpha=1e-30))
    try:
        for req in REQS[:4]:
            a, b = plain.write(req), off.write(req)
            assert [(p.text, p.logprob) for p in a] == [(p.text, p.logprob) for p in b]
            assert [p.text for p in off.write_reference(req)] == [p.text for p in a]
    finally:
        plain.close()
        off.close()


@pytest.mark.parametrize("req", REQS, ids=lambda r: f"{r.form}{r.cipai}-{r.seed}")
def test_contrastive_engine_equals_reference_and_keeps_every_guarantee(models, req):
    poet = _poet(models, Contrast(beta=1.0, alpha=0.1))
    try:
        assert poet.engine is not None and poet.engine.amateur is not None
        fast, ref = poet.write(req), poet.write_reference(req)
        assert [p.text for p in fast] == [p.text for p in ref]
        assert [p.logprob for p in fast] == pytest.approx([p.logprob for p in ref], abs=1e-4)
        for p in fast:
            assert_guarantees(poet.validate(req), p.text)
    finally:
        poet.close()


def test_contrast_changes_the_poems_and_ranks_by_the_experts_likelihood(models):
    plain, cd = _poet(models, None), _poet(models, Contrast(beta=1.0, alpha=0.1))
    try:
        changed = 0
        for req in REQS:
            a, b = plain.write(req), cd.write(req)
            changed += [p.text for p in a] != [p.text for p in b]
            # The reported likelihood is the expert's: scoring the contrastive poem with the plain poet's
            # reference path under the same plan would need the same draws, so check its range instead.
            assert all(p.logprob < 0 for p in b)
        assert changed >= len(REQS) // 2
    finally:
        plain.close()
        cd.close()


def test_an_amateur_of_another_vocabulary_is_refused(tmp_path):
    expert, tok = tiny_model_and_tokenizer(seed=0)
    base = tmp_path / "base"
    expert.save_pretrained(str(base))
    tok.save_pretrained(str(base))
    _, small_tok = tiny_model_and_tokenizer(n_chars=500, seed=0)
    other = tmp_path / "amateur"
    _amateur(small_tok).save_pretrained(str(other))
    small_tok.save_pretrained(str(other))
    with pytest.raises(ModelLoadError, match="vocabulary"):
        Poet.load(base, adapter=None, critic=None, amateur=other)
    with pytest.raises(ModelLoadError, match="no amateur"):
        Poet.load(base, adapter=None, critic=None, amateur=tmp_path / "missing")
    same = tmp_path / "same"
    _amateur(tok).save_pretrained(str(same))
    tok.save_pretrained(str(same))
    poet = Poet.load(base, adapter=None, critic=None, amateur=same)
    try:
        assert poet.contrast == Contrast() and poet.engine.amateur is not None
        assert poet.write(REQS[0])
    finally:
        poet.close()


def test_contrast_switches_off_and_on_between_requests(models):
    expert, tok, amateur = models
    poet = Poet(expert, tok, version="tiny-0", amateur=_weights(amateur))  # loaded, off
    plain, cd = _poet(models, None), _poet(models, Contrast(beta=1.0, alpha=0.1))
    try:
        for req in REQS[:3]:
            assert [p.text for p in poet.write(req)] == [p.text for p in plain.write(req)]
            poet.set_contrast(Contrast(beta=1.0, alpha=0.1))
            assert [p.text for p in poet.write(req)] == [p.text for p in cd.write(req)]
            assert [p.text for p in poet.write_reference(req)] == [p.text for p in cd.write(req)]
            poet.set_contrast(None)
    finally:
        for p in (poet, plain, cd):
            p.close()


def test_auto_takes_the_shipped_amateur_only_when_it_fits(tmp_path, monkeypatch, caplog):
    import logging

    expert, tok = tiny_model_and_tokenizer(seed=0)
    base = tmp_path / "base"
    expert.save_pretrained(str(base))
    tok.save_pretrained(str(base))
    fits = tmp_path / "fits"
    _amateur(tok).save_pretrained(str(fits))
    tok.save_pretrained(str(fits))
    _, small_tok = tiny_model_and_tokenizer(n_chars=500, seed=0)
    other = tmp_path / "other"
    _amateur(small_tok).save_pretrained(str(other))
    small_tok.save_pretrained(str(other))

    monkeypatch.setenv("SHIREN_AMATEUR_DIR", str(fits))
    on = Poet.load(base, adapter=None, critic=None)
    off = Poet.load(base, adapter=None, critic=None, amateur=None)
    try:
        assert on.contrast == Contrast() and off.contrast is None and off.engine.amateur is None
        req = REQS[0]
        on.set_contrast(None)
        assert [p.text for p in on.write(req)] == [p.text for p in off.write(req)]
    finally:
        on.close()
        off.close()
    monkeypatch.setenv("SHIREN_AMATEUR_DIR", str(other))
    with caplog.at_level(logging.INFO, logger="shiren.poet"):
        poet = Poet.load(base, adapter=None, critic=None)
    assert poet.contrast is None and "another vocabulary" in caplog.text  # one line, then plain sampling
    poet.close()
    monkeypatch.setenv("SHIREN_AMATEUR_DIR", str(tmp_path / "none"))
    poet = Poet.load(base, adapter=None, critic=None)
    assert poet.contrast is None
    poet.close()
