"""The poet: one object that turns a PoemRequest into poems. The CLI, the bot and the app use it.

    poet = Poet.load()                      # shipped base model (+ the active adapter, if any)
    poems = poet.write(PoemRequest(form="七绝", title="春夜", acrostic="春江花月"))
    poems = await poet.awrite(request)      # from asyncio: never blocks the event loop
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
import re
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.contrast import Contrast, require_amateur
from core.corpus_lines import FILE_NAME as CORPUS_LINES_FILE
from core.corpus_lines import CorpusLines
from core.critic.critic import Critic
from core.device import describe, resolve_device
from core.engine import Engine, EngineVocab, Job, plan_tensors
from core.fastc import fast_llama
from core.fastlm import FastLlama, LlamaShape
from core.generate import VocabIndex, generate, render_text
from core.plan import build_plan
from core.prompt import header
from core.requests import normalize_request
from core.revise import RevisionTarget
from core.scoring import causal_token_logprobs
from core.smc import Resample
from core.types import MAX_CANDIDATES, BusyError, Poem, PoemRequest, RequestError, ShirenError
from core.weights import LoadedWeights

if TYPE_CHECKING:
    from core.mend import GeneratorScore

_CLAUSE = re.compile(r"[，。？！；、\n]+")
log = logging.getLogger("shiren.poet")

# Drafts the decoder draws for one request without a critic (at least twice the poems asked for): spares
# for the likelihood ranking to drop copied or weak lines.
PLAIN_DRAFTS = 4
# Drafts per request when they are resampled at clause ends (core.smc): the population SMC chooses from.
RESAMPLE_DRAFTS = 8
# Candidates the decoder draws per requested poem when a critic chooses among them (docs/critic.md:
# the measured trade-off of K against latency).
DEFAULT_CANDIDATES = 8
# How the layers of a Llama model are served (core.weights.WEIGHT_FORMATS; docs/bench.md, "A larger model").
DEFAULT_WEIGHTS = "int8"  # 4e-5 nats/char dearer than bf16 on valid, ~10% faster at n=1
# Weight of the critic's score (a logit) beside the mean log-likelihood per char when ranking.
CRITIC_WEIGHT = 1.0
# What a mend must keep: every one of these the draft had holds on the mended poem too.
# Drafts the decoder writes for a revision (only the rewritten characters are sampled: cheap).
REVISION_DRAFTS = 16
GUARANTEES = ("format", "rhyme", "rhyme_common", "tone_relaxed", "tone_relaxed_common")
# Cache rows of the engine (the most candidate rows decoding at once). On the CPU a step's cost grows
# with its rows (docs/bench.md); on a GPU a step costs about the same at 1 row and hundreds, so the
# batcher there is given room for many requests per step (256 rows: a 0.5 GB KV cache for the shipped model).
CPU_MAX_ROWS, CUDA_MAX_ROWS = 64, 256


def make_engine(shape: LlamaShape, state_dict: dict[str, torch.Tensor], vi: VocabIndex,
                device: torch.device, max_rows: int | None = None,
                q8: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                amateur: LoadedWeights | None = None, contrast: Contrast | None = None,
                resample: Resample | None = None) -> Engine:
    """The decode engine for `device`: on the CPU the C kernel where it builds (else the PyTorch forward
    and rules, as today); on a GPU the PyTorch forward, masks and sampler on the device's tensors.
    float32 arithmetic either way, on the reference path's numbers, so a seed gives the same poems on
    the CPU (on a GPU, see docs/bench.md: other summation orders can flip a near-tie). `q8`: the int8
    codes of int8-served layers, which the C kernel streams; the PyTorch forward (and so a GPU) computes
    with the dequantized values `state_dict` holds: the same numbers. `amateur` with `contrast`:
    contrastive decoding (core.contrast), the amateur in a forward of its own beside the expert's.
    `resample`: the drafts are resampled by weight at clause ends (core.smc)."""
    if device.type == "cpu":
        rows = max_rows or CPU_MAX_ROWS
        fa = fast_llama(amateur.shape, amateur.state_dict, max_rows=rows, q8=amateur.quantized or None) if amateur else None
        return Engine(fast_llama(shape, state_dict, max_rows=rows, q8=q8), EngineVocab(vi), amateur=fa,
                      contrast=contrast, resample=resample)
    rows = max_rows or CUDA_MAX_ROWS
    fast = FastLlama(shape, state_dict, max_rows=rows, device=device)
    fa = FastLlama(amateur.shape, amateur.state_dict, max_rows=rows, device=device) if amateur else None
    return Engine(fast, EngineVocab(vi, device=device), amateur=fa, contrast=contrast, resample=resample)


def line_penalties(text: str, first_line: str, corpus_lines: CorpusLines | None) -> tuple[int, int]:
    """(clauses copied verbatim from the corpus, repeated clauses) of a draft; a given first line is no copy."""
    clauses = [c for c in _CLAUSE.split(text) if c]
    copied = sum(1 for c in clauses if c != first_line and corpus_lines is not None and c in corpus_lines)
    return copied, len(clauses) - len(set(clauses))


def rank_score(mean_logprob: float, copied_lines: int, dup_lines: int, tone_strict: bool) -> float:
    """How `Poet` ranks drafts without the critic (with it, `CRITIC_WEIGHT` × its score is added): likelihood
    (mean ln P per sampled char) first; copies and repeats are pushed to the back; strict 格律 breaks ties."""
    return mean_logprob - 5.0 * copied_lines - 5.0 * dup_lines + 0.3 * bool(tone_strict)


class DeadEndError(ShirenError):
    """Every draft of a request ran into a position the rules leave no character for."""


# Tries with other seeds (derived from the request's) when every draft hits a dead end: on the test
# split's requests about 1 in 200 with contrastive decoding at 4 drafts, so two more tries make it rare.
DEAD_END_RETRIES = 2
_RETRY_SEED_STRIDE = 1_000_003


def retry_request(req: PoemRequest, k: int) -> PoemRequest:
    """The k-th retry of `req` (k=0: itself): the same request under a seed derived from its own (a new
    random one when it has none), so the same request and seed still give the same poems."""
    if k == 0 or req.seed is None:
        return req
    return dataclasses.replace(req, seed=(req.seed + k * _RETRY_SEED_STRIDE) % 2**31)


def dead_end_tries(request: PoemRequest) -> Iterator[tuple[PoemRequest, bool]]:
    """The tries of a request, each with whether it is the last: itself, then `DEAD_END_RETRIES` retries
    (logged as they start). A caller moves on to the next only after a DeadEndError."""
    for k in range(DEAD_END_RETRIES + 1):
        if k:
            log.info("every draft hit a dead end; retrying with another seed (%d of %d)", k, DEAD_END_RETRIES)
        yield retry_request(request, k), k == DEAD_END_RETRIES


class ModelLoadError(ShirenError):
    """The model dir is missing or unreadable."""


def analyze_scores(text: str, form: str, cipai: str) -> dict:
    from core.gelv import analyze

    a = analyze(text, form=None if form == "词" else form, cipai=cipai or None)
    return a.scores()


class Poet:
    """Thread-safe; one model, one vocabulary index, a small executor for async callers."""

    def __init__(self, model, tokenizer, *, version: str = "", conditioned: bool = False,
                 corpus_lines: CorpusLines | None = None, max_pending: int = 128, critic: Critic | None = None,
                 candidates: int = DEFAULT_CANDIDATES, polish: bool = True,
                 device: str | torch.device | None = None, min_drafts: int = PLAIN_DRAFTS,
                 mend_guard: bool = True, likelihood_weight: float = 1.0,
                 amateur: LoadedWeights | None = None, contrast: Contrast | None = None,
                 resample: Resample | None = None):
        """`model`: a transformers causal LM, or `LoadedWeights` (core.weights: no transformers needed).
        `critic`: chooses among `candidates` drafts per poem and (with `polish`) mends the chosen ones.
        `min_drafts`: drafts per request at the least, critic or not (the likelihood ranking picks among them).
        `mend_guard`: a mend may not lower the generator's own likelihood of the poem (core.mend).
        `likelihood_weight`: how much a draft's likelihood counts when ranking drafts (0: the first draft
        that copies and repeats no line, strict 格律 first).
        `amateur` with `contrast`: contrastive decoding against that small model (core.contrast; same
        vocabulary as `model`), on the engine and the reference path alike.
        `resample`: sequential Monte Carlo over the drafts (core.smc): at least `RESAMPLE_DRAFTS` of them,
        resampled by weight at clause ends, on the engine and the reference path alike.
        `device`: where the engine and the critic run (core.device: default SHIREN_DEVICE, else CUDA
        when present); the reference path (`write_reference`) stays on the CPU, the yardstick."""
        self._weights = model if isinstance(model, LoadedWeights) else None
        self._hf = None if self._weights is not None else model.eval()
        self._hf_lock = threading.Lock()
        self.tokenizer = tokenizer
        self.vi = VocabIndex(tokenizer)
        self.version = version or "unversioned"
        # Only an SFT adapter teaches the model the keyword/acrostic/first-line header fields.
        self.conditioned = conditioned
        self.corpus_lines = corpus_lines
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poet")
        self._pending = 0
        self._pending_lock = threading.Lock()
        self.max_pending = max_pending
        self.device = resolve_device(device)
        # The lean engine (C kernel or core.fastlm + core.engine) for Llama models; others use the reference path.
        self.engine: Engine | None = None
        self._batcher = None
        if self._weights is not None:
            shape, sd = self._weights.shape, self._weights.state_dict
        elif getattr(model.config, "model_type", "") == "llama":
            shape, sd = LlamaShape.from_config(model.config.to_dict()), model.state_dict()
        else:
            shape = None
        if shape is not None:
            q8 = self._weights.quantized if self._weights is not None else None
            self.engine = make_engine(shape, sd, self.vi, self.device, q8=q8, amateur=amateur, contrast=contrast,
                                      resample=resample)
            if self.device.type != "cpu":
                log.info("decoding on %s: %s", self.device, describe(self.device))
        self.candidates = max(1, candidates)
        self.min_drafts = max(1, min_drafts)
        self.polish = polish
        self.mend_guard = mend_guard
        self.likelihood_weight = likelihood_weight
        require_amateur(contrast, amateur)
        self.amateur, self.contrast, self.resample = amateur, contrast, resample
        self._amateur_hf = None
        self.critic: Critic | None = None
        self.set_critic(critic)

    def set_critic(self, critic: Critic | None) -> None:
        """Use this critic from now on (None: rank by likelihood alone, mend nothing)."""
        self.critic = critic
        if critic is not None:
            from core.infill import RuleReplay
            from core.mend import CriticVocabMap

            critic.to(self.device)  # its forward beside the engine's; it hands back CPU tensors
            # Mending replays the rules over a few poems at a time on the CPU (the C rules where built):
            # the engine's own vocabulary when it is there, else a CPU copy.
            ev = self.engine.ev if self.engine is not None and self.engine.ev.device.type == "cpu" else None
            self._rules = RuleReplay(ev or EngineVocab(self.vi))
            self._vmap = CriticVocabMap(self.vi, critic)

    @property
    def model(self):
        """The transformers model (built on first use when the poet was loaded without transformers)."""
        with self._hf_lock:
            if self._hf is None:
                self._hf = self._weights.hf_model()
            return self._hf

    def set_contrast(self, contrast: Contrast | None) -> None:
        """Contrastive decoding against the loaded amateur from the next request on (None: off). For
        tools comparing settings: not while a batcher serves requests."""
        require_amateur(contrast, self.amateur)
        with self._lock:
            if self.engine is not None:
                self.engine.set_contrast(contrast)
            self.contrast = contrast

    def set_resample(self, resample: Resample | None) -> None:
        """Resample the drafts at clause ends (core.smc) from the next request on (None: off). For tools
        comparing settings: not while a batcher serves requests."""
        with self._lock:
            if self.engine is not None:
                self.engine.set_resample(resample)
            self.resample = resample

    def _amateur_model(self):
        """The amateur as a transformers model, for the reference path (built on first use)."""
        with self._hf_lock:
            if self._amateur_hf is None:
                self._amateur_hf = self.amateur.hf_model()
            return self._amateur_hf

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: Path | None = None, adapter: Path | str | None = "auto",
             critic: Path | str | None = "auto", weights: str | None = None,
             amateur: Path | str | None = "auto", contrast: Contrast | None = None, **kw) -> Poet:
        """Base model (default: SHIREN_MODEL_DIR or the shipped models/base) plus a LoRA adapter:
        "auto" takes the active one (core.adapters.resolve_adapter), None the bare base model.
        `critic`: "auto" the shipped one (SHIREN_CRITIC_DIR, or models/critic once its card says it is
        promoted; missing or not promoted → one log line and no critic), "on" the shipped one regardless,
        a path, or None (no critic).
        `weights`: how a Llama model's layers are served, "bf16" or "int8" (core.quant; default
        SHIREN_WEIGHTS, else DEFAULT_WEIGHTS).
        `amateur`: contrastive decoding (core.contrast) against a small Llama model on the same tokenizer:
        "auto" the shipped one (SHIREN_AMATEUR_DIR, else models/amateur) when it is there and fits this
        base's tokenizer (else one log line and plain sampling), a path (which must fit), or None (plain).
        `contrast`: its setting (default Contrast(): the β readers chose, docs/decode-sweep.md).
        A Llama model loads without transformers or peft (core.weights), others through transformers."""
        import json

        from core import paths

        model_dir = Path(model_dir or paths.model_dir())
        if not (model_dir / "config.json").exists():
            raise ModelLoadError(f"no model at {model_dir} (set SHIREN_MODEL_DIR or reinstall Shiren)")
        from core.adapters import base_id, base_mismatch, is_adapter, resolve_adapter

        version = base_id(model_dir)
        if adapter == "auto":
            adapter = resolve_adapter(model_dir=model_dir)
        if adapter is not None:
            if not is_adapter(Path(adapter)):
                raise ModelLoadError(f"{adapter} is not a LoRA adapter folder (adapter_config.json + adapter_model.safetensors)")

        try:
            llama = json.loads((model_dir / "config.json").read_text("utf-8")).get("model_type") == "llama"
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot read {model_dir / 'config.json'}: {e}") from e
        if llama:
            from core.weights import CharTokenizer, WeightsError, load_llama

            try:
                tok = CharTokenizer(model_dir)
            except Exception as e:  # noqa: BLE001
                raise ModelLoadError(f"cannot load the tokenizer at {model_dir}: {e}") from e
            try:
                model = load_llama(model_dir, Path(adapter) if adapter is not None else None,
                                   weights=weights or os.environ.get("SHIREN_WEIGHTS") or DEFAULT_WEIGHTS)
            except WeightsError as e:
                raise ModelLoadError(str(e)) from e
        else:
            tok, model = cls._load_hf(model_dir, adapter)
        if adapter is not None:
            why = base_mismatch(Path(adapter), model_dir)  # after the adapter's own checks: theirs say more
            if why:
                raise ModelLoadError(why)
            version += "+" + Path(adapter).name
        lines = CorpusLines.load(model_dir / CORPUS_LINES_FILE)
        if amateur == "auto":
            if (paths.amateur_dir() / "config.json").exists():
                try:
                    kw["amateur"] = cls._load_amateur(paths.amateur_dir(), tok)
                except ModelLoadError as e:
                    log.info("sampling without contrastive decoding: %s", e)
        elif amateur is not None:
            kw["amateur"] = cls._load_amateur(Path(amateur), tok)
        if kw.get("amateur") is not None:
            kw["contrast"] = contrast or Contrast()
        if critic is None:
            log.info("writing without the critic (--no-critic)")
            crit = None
        else:
            crit = Critic.load_or_none(None if critic in ("auto", "on") else Path(critic))
            if crit is not None and critic == "auto" and not os.environ.get("SHIREN_CRITIC_DIR") \
                    and not crit.card.metrics.get("promoted"):
                # The shipped critic chooses only once a blind reading shows readers prefer its choices
                # (docs/critic.md: its first one did not); until then it is there on request.
                log.info("the shipped critic is not promoted (readers did not prefer its choices, docs/critic.md): "
                         "writing without it; --critic uses it")
                crit = None
            trained_on = crit.card.metrics.get("human_generator") if crit is not None else None
            if trained_on and trained_on != version:
                log.info("the critic's human-likeness head was fitted on poems of %s, not %s: "
                         "refit it (`shiren train critic --stage human`)", trained_on, version)
        return cls(model, tok, version=version, conditioned=adapter is not None, corpus_lines=lines, critic=crit, **kw)

    @staticmethod
    def _load_amateur(amateur_dir: Path, tok) -> LoadedWeights:
        """A contrastive-decoding amateur: a Llama model whose tokenizer is the poet's own."""
        from core.weights import CharTokenizer, WeightsError, load_llama

        if not (amateur_dir / "config.json").exists():
            raise ModelLoadError(f"no amateur model at {amateur_dir}")
        try:
            if CharTokenizer(amateur_dir).get_vocab() != tok.get_vocab():
                raise ModelLoadError(f"the amateur at {amateur_dir} has another vocabulary than the poet's")
            return load_llama(amateur_dir)
        except (OSError, ValueError, WeightsError) as e:
            raise ModelLoadError(f"cannot load the amateur at {amateur_dir}: {e}") from e

    @staticmethod
    def _load_hf(model_dir: Path, adapter):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(model_dir))
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"cannot load the model at {model_dir}: {e}") from e
        if adapter is not None:
            import warnings

            from peft import PeftModel

            try:
                with warnings.catch_warnings():  # peft/transformers deprecation chatter, not the user's concern
                    warnings.simplefilter("ignore", FutureWarning)
                    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            except Exception as e:  # noqa: BLE001
                raise ModelLoadError(f"cannot load the adapter at {adapter}: {e}") from e
        return tok, model

    # ---- writing -------------------------------------------------------------------------
    def validate(self, request: PoemRequest) -> PoemRequest:
        return normalize_request(request, self.vi.vocab_chars)

    def prompt_for(self, req: PoemRequest) -> str:
        if self.conditioned:
            return header(req.form, title=req.title, cipai=req.cipai, keywords=req.keywords,
                          acrostic=req.acrostic, first_line=req.first_line)
        return header(req.form, title=req.title, cipai=req.cipai)

    def _prepare(self, request: PoemRequest):
        req = self.validate(request)
        seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
        plan = build_plan(req, random.Random(seed))
        # Oversample: spare candidates let the reranker drop copied or weak lines; a critic chooses among more.
        drafts = self.candidates * req.n if self.critic is not None else 0
        if self.resample is not None:  # resampling needs a population to choose from
            drafts = max(drafts, RESAMPLE_DRAFTS)
        return req, seed, plan, min(MAX_CANDIDATES, max(self.min_drafts, 2 * req.n, drafts))

    def make_job(self, request: PoemRequest) -> tuple[PoemRequest, Job]:
        req, seed, plan, batch = self._prepare(request)
        prompt_ids = self.tokenizer(self.prompt_for(req), add_special_tokens=False)["input_ids"]
        return req, Job(plan, plan_tensors(plan, self.vi), prompt_ids, batch, req.temperature, req.top_p, seed)

    def finish_job(self, req: PoemRequest, job: Job) -> list[Poem]:
        return self._rank(req, job.plan, Engine.results(job))

    def write(self, request: PoemRequest) -> list[Poem]:
        """`request.n` poems, best first. Same request + same seed + same model → same poems."""
        for req, last in dead_end_tries(request):
            try:
                return self._write_once(req)
            except DeadEndError:
                if last:
                    raise
        raise AssertionError("unreachable")

    def _write_once(self, request: PoemRequest) -> list[Poem]:
        if self.engine is None:
            return self.write_reference(request)
        if self._batcher is not None:  # a server: share the batches with everyone else
            return self._batcher.submit(request).result()
        req, job = self.make_job(request)
        with self._lock:
            self.engine.run([job])
        return self.finish_job(req, job)

    def write_reference(self, request: PoemRequest) -> list[Poem]:
        """The same request through the reference path (HF forward + per-row masks): the yardstick
        the fast engine is tested and benchmarked against."""
        req, seed, plan, batch = self._prepare(request)
        with self._lock:
            amateur = self._amateur_model() if self.contrast is not None else None
            rows = generate(self.model, self.tokenizer, self.vi, plan, self.prompt_for(req), batch,
                            req.temperature, req.top_p, seed, amateur=amateur, contrast=self.contrast,
                            resample=self.resample)
        return self._rank(req, plan, rows)

    def _rank(self, req: PoemRequest, plan, rows, avoid: frozenset[str] = frozenset()) -> list[Poem]:
        scored = []
        seen = set(avoid)
        kept = []
        for ids, st in rows:
            if st.failed:
                continue
            text = render_text(plan, self.vi, ids)
            if text in seen:
                continue
            seen.add(text)
            copied, dup_lines = line_penalties(text, req.first_line, self.corpus_lines)
            mean_lp = st.logprob / max(1, st.n_sampled)
            scores = analyze_scores(text, req.form, req.cipai)
            scores["copied_lines"] = copied
            rank = rank_score(self.likelihood_weight * mean_lp, copied, dup_lines, bool(scores.get("tone_strict")))
            scored.append((rank, Poem(text=text, form=req.form, title=req.title, cipai=req.cipai,
                                      logprob=round(mean_lp, 4), scores=scores, model_version=self.version)))
            kept.append(ids)
        if not scored:
            raise DeadEndError("the poet could not complete this request; try another seed or fewer constraints")
        if self.critic is not None:  # the critic reads each whole draft: its score joins the likelihood
            crit = self.critic.score([p.text for _, p in scored], [req.form] * len(scored)).tolist()
            for (_, p), c in zip(scored, crit, strict=True):
                p.scores["critic"] = round(c, 4)
            scored = [(r + CRITIC_WEIGHT * c, p, ids) for (r, p), c, ids in zip(scored, crit, kept, strict=True)]
        else:
            scored = [(r, p, ids) for (r, p), ids in zip(scored, kept, strict=True)]
        scored.sort(key=lambda x: -x[0])
        best = scored[: req.n]
        if self.critic is not None and self.polish:
            texts = {p.text for _, p, _ in best} | set(avoid)
            best = [(r, self._mended(req, plan, p, ids, texts), ids) for r, p, ids in best]
        return [p for _, p, _ in best]

    def _mended(self, req: PoemRequest, plan, poem: Poem, ids: list[int], taken: set[str],
                only: set[int] | None = None) -> Poem:
        """The poem with its doubted characters mended (core.mend), when every guarantee still holds on
        the result and it differs from the other poems returned; else the poem as it was."""
        from core.engine import plan_tensors
        from core.mend import mend

        pt = plan_tensors(plan, self.vi)
        m = mend(self.critic, self._rules, self._vmap, plan, pt, ids, req.form, poem.scores["critic"], only=only,
                 lm=self._generator_score(req) if self.mend_guard else None)
        if not m.edits:
            return poem
        text = render_text(plan, self.vi, m.ids)
        scores = analyze_scores(text, req.form, req.cipai)
        if text in taken or not all(scores.get(k) for k in GUARANTEES if poem.scores.get(k)):
            return poem  # never trade a guarantee (or distinctness) for the critic's taste
        taken.discard(poem.text)
        taken.add(text)
        scores["copied_lines"] = poem.scores.get("copied_lines", 0)
        scores["critic"] = round(m.score, 4)
        scores["mended"] = [{"line": plan.slots[e.slot].line, "pos": plan.slots[e.slot].pos, "old": e.old, "new": e.new}
                            for e in m.edits]
        return Poem(text=text, form=poem.form, title=poem.title, cipai=poem.cipai, logprob=poem.logprob,
                    scores=scores, model_version=poem.model_version)

    def _generator_score(self, req: PoemRequest) -> GeneratorScore:
        """Whole poems (one token per slot, all of one plan) → the generator's mean ln P per token given
        this request's prompt, read left to right in one forward (the transformers model, float32)."""
        prompt = self.tokenizer(self.prompt_for(req), add_special_tokens=False)["input_ids"]

        def score(rows: list[list[int]]) -> torch.Tensor:
            lps = causal_token_logprobs(self.model, [(prompt, r) for r in rows], self.tokenizer.pad_token_id)
            return torch.stack([lp.mean() for lp in lps])

        return score

    def revise(self, request: PoemRequest, text: str, target: RevisionTarget, seed: int | None = None) -> Poem:
        """The poem `text` (written for `request`) with one line or one character rewritten under every
        rule of the form (core.revise); the rest, and the request's fixed characters, kept."""
        from core.engine import plan_tensors
        from core.plan import fix_all_but
        from core.revise import clause_lengths, poem_body, revision_slots

        req = self.validate(dataclasses.replace(request, n=1, seed=seed))
        body = poem_body(text)
        seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
        try:
            plan0 = build_plan(dataclasses.replace(req, keywords=()), random.Random(seed),
                               clause_lengths(body) if req.form == "词" else None)
        except RequestError as e:
            raise RequestError(f"cannot revise this poem: {e}") from e
        kinds_ok = len(body) == len(plan0.slots) and all(
            (s.kind == "punct") == bool(_CLAUSE.fullmatch(c)) for s, c in zip(plan0.slots, body, strict=False))
        if not kinds_ok or any(c not in self.vi.tok_to_id for c in body if not _CLAUSE.fullmatch(c)):
            raise RequestError(f"this text is not a {req.cipai or req.form} Shiren can revise "
                               "(its lines have other lengths, or it has characters the model does not know)")
        free = revision_slots(req, plan0, body, target)
        chars = [s.text if s.kind == "punct" else c for s, c in zip(plan0.slots, body, strict=True)]
        plan = fix_all_but(plan0, chars, free)
        old = render_text(plan, self.vi, [self.vi.char_id(c) for c in chars])
        rows = REVISION_DRAFTS
        with self._lock:
            if self.engine is not None:
                ids = self.tokenizer(self.prompt_for(req), add_special_tokens=False)["input_ids"]
                job = Job(plan, plan_tensors(plan, self.vi), ids, rows, req.temperature, req.top_p, seed)
                self.engine.run([job])
                drafts = Engine.results(job)
            else:
                drafts = generate(self.model, self.tokenizer, self.vi, plan, self.prompt_for(req), rows,
                                  req.temperature, req.top_p, seed)
        try:
            poem = self._rank(req, plan, drafts, avoid=frozenset({old}))[0]
        except ShirenError as e:
            raise RequestError("no other version of that part fits the rest of the poem; try another line") from e
        poem.scores["revised"] = target.describe()
        return poem

    async def arevise(self, request: PoemRequest, text: str, target: RevisionTarget, seed: int | None = None,
                      timeout: float | None = 120.0) -> Poem:
        """`revise` from asyncio, off the event loop."""
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self.revise, request, text, target, seed)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as e:
            raise BusyError("the poet took too long; please try again") from e

    def doubts(self, poem: Poem, top: int = 3) -> list[tuple[int, str, float]]:
        """The characters the critic doubts most: (position in the text without newlines, char, −log p),
        most doubtful first; [] without a critic."""
        if self.critic is None:
            return []
        body = poem.text.replace("\n", "")
        pos = [i for i, c in enumerate(body) if c in self.vi.vocab_chars and not _CLAUSE.match(c)]
        d = self.critic.doubt(poem.text, poem.form, pos)
        return sorted(((p, body[p], round(x, 2)) for p, x in zip(pos, d, strict=True)), key=lambda t: -t[2])[:top]

    def start_batcher(self, max_queue: int = 256):
        """Serve through shared batches from now on (the bot and the app do; a CLI call need not)."""
        if self.engine is not None and self._batcher is None:
            from core.batcher import Batcher

            self._batcher = Batcher(self, max_queue=max_queue)
        return self._batcher

    async def awrite(self, request: PoemRequest, timeout: float | None = 120.0) -> list[Poem]:
        """`write` from asyncio, off the event loop, in shared batches; BusyError when the queue is full."""
        if self.engine is not None:
            batcher = self.start_batcher(self.max_pending)
            for req, last in dead_end_tries(request):
                fut = batcher.submit(req, timeout)
                try:
                    return await asyncio.wrap_future(fut)
                except asyncio.CancelledError:
                    fut.cancel()  # the batcher drops the job at its next step
                    raise
                except DeadEndError:
                    if last:
                        raise
            raise AssertionError("unreachable")
        req = self.validate(request)  # bad requests fail fast, without queueing
        with self._pending_lock:
            if self._pending >= self.max_pending:
                raise BusyError("the poet is busy; please try again in a moment")
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            fut = loop.run_in_executor(self._executor, self.write, req)
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as e:
            raise BusyError("the poet took too long; please try again") from e
        finally:
            with self._pending_lock:
                self._pending -= 1

    def check(self, text: str, form: str | None = None, cipai: str | None = None):
        """格律 analysis of any poem (core.gelv.analyze)."""
        from core.gelv import analyze

        return analyze(text, form=form, cipai=cipai)

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None
        self._executor.shutdown(wait=False, cancel_futures=True)
