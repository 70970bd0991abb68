"""The poet: one object that turns a PoemRequest into poems. The CLI, the bot and the app use it.

    poet = Poet.load()                      # shipped base model (+ the active adapter, if any)
    poems = poet.write(PoemRequest(form="七绝", title="春夜", acrostic="春江花月"))
    poems = await poet.awrite(request)      # from asyncio: never blocks the event loop
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from core.corpus_lines import FILE_NAME as CORPUS_LINES_FILE
from core.corpus_lines import CorpusLines
from core.engine import Engine, EngineVocab, Job, plan_tensors
from core.fastc import fast_llama
from core.fastlm import LlamaShape
from core.generate import VocabIndex, generate, render_text
from core.plan import build_plan
from core.prompt import header
from core.requests import normalize_request
from core.types import BusyError, Poem, PoemRequest, ShirenError

_CLAUSE = re.compile(r"[，。？！；、\n]+")


class ModelLoadError(ShirenError):
    """The model dir is missing or unreadable."""


def analyze_scores(text: str, form: str, cipai: str) -> dict:
    from core.gelv import analyze

    a = analyze(text, form=None if form == "词" else form, cipai=cipai or None)
    return a.scores()


class Poet:
    """Thread-safe; one model, one vocabulary index, a small executor for async callers."""

    def __init__(self, model, tokenizer, *, version: str = "", conditioned: bool = False,
                 corpus_lines: CorpusLines | None = None, max_pending: int = 128):
        """`model`: a transformers causal LM, or `LoadedWeights` (core.weights: no transformers needed)."""
        from core.weights import LoadedWeights

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
            # float32: the same numbers as the reference path, so a seed gives the same poems on both.
            self.engine = Engine(fast_llama(shape, sd, max_rows=64), EngineVocab(self.vi))

    @property
    def model(self):
        """The transformers model (built on first use when the poet was loaded without transformers)."""
        with self._hf_lock:
            if self._hf is None:
                self._hf = self._weights.hf_model()
            return self._hf

    # ---- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, model_dir: Path | None = None, adapter: Path | str | None = "auto", **kw) -> Poet:
        """Base model (default: SHIREN_MODEL_DIR or the shipped models/base) plus a LoRA adapter:
        "auto" takes the active one (core.adapters.resolve_adapter), None the bare base model.
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
                model = load_llama(model_dir, Path(adapter) if adapter is not None else None)
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
        return cls(model, tok, version=version, conditioned=adapter is not None, corpus_lines=lines, **kw)

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
        # Oversample: spare candidates let the reranker drop copied or weak lines.
        return req, seed, plan, min(64, max(4, 2 * req.n))

    def make_job(self, request: PoemRequest) -> tuple[PoemRequest, Job]:
        req, seed, plan, batch = self._prepare(request)
        prompt_ids = self.tokenizer(self.prompt_for(req), add_special_tokens=False)["input_ids"]
        return req, Job(plan, plan_tensors(plan, self.vi), prompt_ids, batch, req.temperature, req.top_p, seed)

    def finish_job(self, req: PoemRequest, job: Job) -> list[Poem]:
        return self._rank(req, job.plan, Engine.results(job))

    def write(self, request: PoemRequest) -> list[Poem]:
        """`request.n` poems, best first. Same request + same seed + same model → same poems."""
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
            rows = generate(self.model, self.tokenizer, self.vi, plan, self.prompt_for(req), batch,
                            req.temperature, req.top_p, seed)
        return self._rank(req, plan, rows)

    def _rank(self, req: PoemRequest, plan, rows) -> list[Poem]:
        scored = []
        seen = set()
        for ids, st in rows:
            if st.failed:
                continue
            text = render_text(plan, self.vi, ids)
            if text in seen:
                continue
            seen.add(text)
            clauses = [c for c in _CLAUSE.split(text) if c]
            fixed = {req.first_line}
            copied = sum(1 for c in clauses if c not in fixed and self.corpus_lines is not None and c in self.corpus_lines)
            dup_lines = len(clauses) - len(set(clauses))
            mean_lp = st.logprob / max(1, st.n_sampled)
            scores = analyze_scores(text, req.form, req.cipai)
            scores["copied_lines"] = copied
            # Likelihood first; copies and repeats are pushed to the back; strict 格律 breaks ties.
            rank = mean_lp - 5.0 * copied - 5.0 * dup_lines + 0.3 * bool(scores.get("tone_strict"))
            scored.append((rank, Poem(text=text, form=req.form, title=req.title, cipai=req.cipai,
                                      logprob=round(mean_lp, 4), scores=scores, model_version=self.version)))
        if not scored:
            raise ShirenError("the poet could not complete this request; try another seed or fewer constraints")
        scored.sort(key=lambda x: -x[0])
        return [p for _, p in scored[: req.n]]

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
            fut = batcher.submit(request, timeout)
            try:
                return await asyncio.wrap_future(fut)
            except asyncio.CancelledError:
                fut.cancel()  # the batcher drops the job at its next step
                raise
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
