"""Resampling the drafts at clause ends (core.smc): the weights, the resampling rule, and its wiring into
the engine (C rules and torch rules) and the reference path, which must still give the same poems."""

from __future__ import annotations

import math

import pytest
import torch
from request_support import BASE_REQUESTS, WITH_KEYWORD_CI, WITH_REPEATS
from test_generate import assert_guarantees

import core.engine as engine_mod
from core.contrast import Contrast
from core.engine import Engine, EngineVocab
from core.fastlm import FastLlama
from core.poet import RESAMPLE_DRAFTS, Poet
from core.smc import Resample, legal_log_mass, needs_resampling, systematic
from core.testing import tiny_model_and_tokenizer
from core.weights import LoadedWeights
from training.model import GPTConfig, build_model

REQS = [*BASE_REQUESTS, WITH_KEYWORD_CI, WITH_REPEATS]


def test_legal_log_mass_by_hand():
    expert = torch.tensor([[0.0, math.log(3.0), 0.0, 0.0]])
    mask = torch.tensor([[False, True, True, False]])
    # T 1: mass (3 + 1) / 6; T 0.5 squares the odds: (9 + 1) / 12.
    assert legal_log_mass(expert, mask, 1.0).item() == pytest.approx(math.log(4 / 6))
    assert legal_log_mass(expert, mask, 0.5).item() == pytest.approx(math.log(10 / 12))
    both = legal_log_mass(expert.repeat(2, 1), mask.repeat(2, 1), torch.tensor([1.0, 0.5]))
    assert both.tolist() == pytest.approx([math.log(4 / 6), math.log(10 / 12)])


def test_systematic_resampling():
    even = torch.zeros(4, dtype=torch.float64)
    assert systematic(even, 0.3).tolist() == [0, 1, 2, 3]  # equal weights: every draft keeps its place
    one = torch.tensor([-1e9, 0.0, -1e9, -1e9])
    assert systematic(one, 0.9).tolist() == [1, 1, 1, 1]  # one live draft: all become copies of it
    half = torch.log(torch.tensor([0.5, 0.5, 0.0, 0.0]))
    assert systematic(half, 0.1).tolist() == [0, 0, 1, 1]


def test_when_to_resample():
    r = Resample(0.5)
    assert not needs_resampling(torch.zeros(8), r)  # ESS 8
    assert needs_resampling(torch.tensor([0.0, -50.0, -50.0, -50.0]), r)  # ESS ~1 < 2
    assert not needs_resampling(torch.tensor([0.0, 0.0, -50.0, -50.0]), r)  # ESS 2, not below
    assert not needs_resampling(torch.tensor([0.0, -50.0]), Resample(0.0))
    with pytest.raises(ValueError, match="threshold"):
        Resample(1.5)


@pytest.fixture(scope="module")
def models():
    expert, tok = tiny_model_and_tokenizer(seed=0)
    torch.manual_seed(7)
    amateur = build_model(GPTConfig(arch="llama", vocab_size=len(tok), block_size=256, n_layer=1, n_head=2,
                                    n_embd=16)).eval()
    return expert, tok, amateur


def _poet(models, contrast: Contrast | None, torch_rules: bool = False) -> Poet:
    expert, tok, amateur = models
    w = LoadedWeights(config=amateur.config.to_dict(), state_dict=dict(amateur.state_dict()),
                      saved_dtype=torch.float32) if contrast else None
    poet = Poet(expert, tok, version="tiny-0", amateur=w, contrast=contrast, resample=Resample(0.5))
    if torch_rules:  # the PyTorch forward and rules (a machine without the C kernel; a GPU runs these)
        fa = FastLlama.from_hf(amateur, max_rows=64) if contrast else None
        poet.engine = Engine(FastLlama.from_hf(expert, max_rows=64), EngineVocab(poet.vi, kernel=False),
                             amateur=fa, contrast=contrast, resample=Resample(0.5))
    return poet


@pytest.fixture
def count_resamplings(monkeypatch):
    calls = []

    def counted(logw, u):
        idx = systematic(logw, u)
        calls.append(idx.tolist())
        return idx

    monkeypatch.setattr(engine_mod, "systematic", counted)
    return calls


@pytest.mark.parametrize("contrast", [None, Contrast()], ids=["plain", "contrast"])
@pytest.mark.parametrize("torch_rules", [False, True], ids=["c-rules", "torch-rules"])
def test_engine_equals_reference_and_keeps_every_guarantee(models, contrast, torch_rules, count_resamplings):
    poet = _poet(models, contrast, torch_rules)
    try:
        for req in REQS:
            fast, ref = poet.write(req), poet.write_reference(req)
            assert [p.text for p in fast] == [p.text for p in ref], req
            assert [p.logprob for p in fast] == pytest.approx([p.logprob for p in ref], abs=1e-4)
            assert len({p.text for p in fast}) == len(fast) == req.n
            for p in fast:
                assert_guarantees(poet.validate(req), p.text)
    finally:
        poet.close()
    # The rows were resampled, and copies replaced some of them (else the test would not test it).
    assert len(count_resamplings) >= 3
    assert any(len(set(idx)) < len(idx) for idx in count_resamplings)


def test_resampling_changes_the_poems_and_draws_enough_drafts(models):
    poet = _poet(models, None)
    try:
        req, job = poet.make_job(BASE_REQUESTS[0])
        assert job.n_rows == RESAMPLE_DRAFTS
        a = [p.text for p in poet.write(BASE_REQUESTS[0])]
        poet.set_resample(None)
        b = [p.text for p in poet.write(BASE_REQUESTS[0])]
        assert a != b
        assert poet.make_job(BASE_REQUESTS[0])[1].n_rows < RESAMPLE_DRAFTS
    finally:
        poet.close()
