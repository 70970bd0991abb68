"""One feedback fine-tuning round: ratings → preference pairs → DPO on the active LoRA adapter → gated promotion.

    result = run_feedback_round(store)           # the CLI, the bot's /retrain and schedule, the terminal app

1. A file lock in SHIREN_HOME (`feedback.lock`, fcntl.flock, non-blocking): two rounds never overlap.
2. Enough new ratings since the last finished round (by the time a rating was last set), unless forced.
3. Preference pairs (training.preference): same request, different stars; lone liked/disliked ratings
   against fresh samples of the active model ranked by the 格律 engine.
4. DPO with TRL's `DPOTrainer` on a peft model that starts from the active adapter's weights (or the
   shipped default, or a fresh LoRA on the bare base), the reference being that adapter before training;
   the loss is `sigmoid` DPO plus an SFT term on the chosen poems (loss_type ["sigmoid", "sft"]), with a
   low learning rate and few steps — small models collapse into repetition under pure preference loss.
5. The candidate is saved atomically as a NEW adapter folder (SHIREN_HOME/adapters/fb-<time>); the active
   adapter's folder is only ever read.
6. Candidate and active poets write the same fixed, held-out requests with the same seeds: format,
   rhyme and tone rates must not drop at all, the repeated-char rate must not rise, and the preference
   metric must improve: the critic's rating head retrained on the ratings once there are enough
   (training.critic_heads), below that its human-likeness head, without a critic a bag-of-characters
   stars proxy, or any `preference(text) -> float` given; the same judge mines the fresh-sample pairs.
   All gates pass → promoted (`store.promote`); else it stays a candidate and the run records why.

Any exception records the run as failed and removes the unregistered candidate folder; a killed process
leaves at most a hidden temp folder and a "running" run row, both cleaned up by the next round.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.types import PoemRequest, ShirenError
from training.metrics import bootstrap_ci

KIND = "feedback"
LOCK_NAME = "feedback.lock"
OK_OUTCOMES = ("promoted", "candidate")
Progress = Callable[[float, str], None]

# The fixed evaluation requests: form + title only (every adapter and the bare base understand these),
# titles kept apart from anything the simulation trains on. Seeds fixed: candidate and active are compared
# on exactly the same sampling noise.
MIN_PAIRED_REQUESTS = 8  # held-out poems written on both sides, below which a gain is not measured
EVAL_TITLES = ("春晓", "秋夜", "登楼", "山居", "送友", "寒食", "暮归", "客思")
EVAL_FORMS = ("五绝", "七绝", "五律", "七律")


def default_eval_requests(seeds_per_request: int = 1) -> list[PoemRequest]:
    reqs = [PoemRequest(form=f, title=t, seed=7000 + 10 * i + k)
            for i, (f, t) in enumerate((f, t) for f in EVAL_FORMS for t in EVAL_TITLES)
            for k in range(seeds_per_request)]
    reqs += [PoemRequest(form="词", cipai=c, title=t, seed=7900 + i)
             for i, (c, t) in enumerate((("浣溪沙", "春晚"), ("如梦令", "夜雨")))]
    return reqs


class FeedbackBusyError(ShirenError):
    """Another feedback round holds the lock."""


@dataclass
class FeedbackConfig:
    beta: float = 0.1  # DPO temperature: how far the policy may move from the reference
    lr: float = 1e-4  # low on purpose (LoRA)
    max_steps: int = 120
    epochs: float = 2.0  # passes over the pairs, capped by max_steps
    batch_size: int = 8
    sft_weight: float = 0.2  # weight of the SFT (NLL on chosen) term next to the DPO term
    max_len: int = 192
    seed: int = 0
    n_fresh: int = 4  # fresh samples per lone rating
    min_pref_gain: float = 0.0  # the preference metric must exceed the active's by more than this
    rank: int = 16  # LoRA rank/alpha, only when there is no adapter to start from
    alpha: int = 32
    threads: int = 0  # torch threads for the round (0: leave as is)


@dataclass
class FeedbackResult:
    outcome: str  # promoted | candidate | skipped | failed
    message: str
    run_id: int | None = None
    adapter: str | None = None
    parent: str | None = None
    reasons: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- lock ---------------------------------------------------------------------------------------------

@contextlib.contextmanager
def feedback_lock(home: Path | None = None) -> Iterator[Path]:
    """Hold SHIREN_HOME/feedback.lock for the duration; FeedbackBusyError if another round holds it.
    The OS releases the lock when the holder dies, so a killed round never blocks the next one."""
    from core import paths

    home = Path(home or paths.data_home())
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FeedbackBusyError("a feedback round is already running; try again when it has finished") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {datetime.now(UTC).isoformat(timespec='seconds')}\n".encode())
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_running(home: Path | None = None) -> bool:
    try:
        with feedback_lock(home):
            return False
    except FeedbackBusyError:
        return True


# ---- bookkeeping --------------------------------------------------------------------------------------

def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def last_success(store) -> datetime | None:
    """Start time of the newest finished (promoted or candidate) feedback round."""
    for r in store.list_runs(limit=1000):
        if r.kind == KIND and r.outcome in OK_OUTCOMES:
            return _utc(r.started)
    return None


def count_new_ratings(store, rated: list | None = None) -> tuple[int, int]:
    """(ratings set or changed since the last finished round, all ratings). Re-rates count as new."""
    rated = store.rated_poems() if rated is None else rated
    since = last_success(store)
    new = len(rated) if since is None else sum(1 for r in rated if _utc(r.rated) > since)
    return new, len(rated)


def cleanup_interrupted(store, adapters_dir: Path) -> list[int]:
    """Runs left "running" by a killed round are marked failed; hidden temp folders are removed.
    Call only while holding the lock."""
    stale = [r.id for r in store.list_runs(limit=1000) if r.kind == KIND and r.outcome == "running"]
    for rid in stale:
        store.finish_run(rid, "failed", error="interrupted: the process stopped before the round finished")
    if adapters_dir.is_dir():
        for p in adapters_dir.glob(".fb-*.tmp.*"):
            shutil.rmtree(p, ignore_errors=True)
    return stale


def active_source(store) -> tuple[str | None, Path | None]:
    """(name, folder) of the adapter a round starts from: the database's active one, else the shipped default."""
    from core.adapters import is_adapter, shipped_default

    rec = store.active_adapter()
    if rec is not None and is_adapter(Path(rec.path)):
        return rec.name, Path(rec.path)
    p = shipped_default()
    return (p.name, p) if p is not None else (None, None)


def new_adapter_name(store, adapters_dir: Path) -> str:
    taken = {a.name for a in store.list_adapters()}
    stem = "fb-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name, i = stem, 1
    while name in taken or (adapters_dir / name).exists():
        i += 1
        name = f"{stem}-{i}"
    return name


# ---- training -----------------------------------------------------------------------------------------

def load_base(base_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    return model, tok


def train_dpo(base, tokenizer, parent: Path | None, rows: list[dict], cfg: FeedbackConfig,
              progress: Progress | None = None, workdir: Path | None = None):
    """DPO (+ SFT term) with TRL on a peft model starting from `parent` (an adapter folder, or a fresh LoRA
    when None). The reference is `parent` merged into a copy of the base: the adapter before training.
    Returns (peft model, history)."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from training.sft import SFTConfig, lora_model

    torch.manual_seed(cfg.seed)
    ref = copy.deepcopy(base)  # before peft injects its layers into `base`
    if parent is not None:
        ref = PeftModel.from_pretrained(ref, str(parent)).merge_and_unload()
        policy = PeftModel.from_pretrained(base, str(parent), is_trainable=True)
    else:
        policy = lora_model(base, SFTConfig(rank=cfg.rank, alpha=cfg.alpha, dropout=0.0, bf16=False))
    ref.eval()
    steps = max(1, min(cfg.max_steps, math.ceil(cfg.epochs * len(rows) / cfg.batch_size)))
    sft = cfg.sft_weight > 0
    from core.device import resolve_device

    args = DPOConfig(
        output_dir=str(workdir or tempfile.mkdtemp(prefix="shiren-dpo-")),
        # CUDA when present (SHIREN_DEVICE=cpu keeps the round on the CPU); float32 either way.
        use_cpu=resolve_device().type == "cpu", bf16=False, fp16=False, gradient_checkpointing=False,
        per_device_train_batch_size=cfg.batch_size, max_steps=steps, learning_rate=cfg.lr,
        lr_scheduler_type="cosine", warmup_steps=min(5, steps // 10),
        beta=cfg.beta, loss_type=["sigmoid", "sft"] if sft else ["sigmoid"],
        loss_weights=[1.0, cfg.sft_weight] if sft else None,
        max_length=cfg.max_len, precompute_ref_log_probs=True,
        logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True, seed=cfg.seed,
        dataloader_num_workers=0,
    )
    t0 = time.time()

    class _Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ARG002
            if progress is None or not logs or "loss" not in logs:
                return
            progress(0.15 + 0.55 * state.global_step / max(1, state.max_steps),
                     f"step {state.global_step}/{state.max_steps} loss {float(logs['loss']):.3f} "
                     f"margin {float(logs.get('rewards/margins', 0)):.3f} acc {float(logs.get('rewards/accuracies', 0)):.2f}")

    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, callbacks=[_Report()])
    trainer.remove_callback(PrinterCallback)  # it prints every raw log dict when tqdm is off
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    hist = {
        "steps": steps, "pairs": len(rows), "seconds": round(time.time() - t0, 1),
        "loss_first": logs[0]["loss"] if logs else None, "loss_last": logs[-1]["loss"] if logs else None,
        "margin_last": logs[-1].get("rewards/margins") if logs else None,
        "accuracy_last": logs[-1].get("rewards/accuracies") if logs else None,
        "log": [{k: h[k] for k in ("step", "loss", "rewards/margins", "rewards/accuracies") if k in h} for h in logs],
    }
    del trainer, ref
    return policy, hist


def save_candidate(model, out_dir: Path, base_name: str, parent: str | None, cfg: FeedbackConfig, hist: dict,
                   data: dict) -> None:
    """The adapter folder as one immutable artefact (temp dir, then one rename)."""
    from core.atomic import atomic_dir

    with atomic_dir(out_dir) as tmp:
        model.peft_config["default"].base_model_name_or_path = base_name
        model.save_pretrained(str(tmp), safe_serialization=True, save_embedding_layers=False)
        (tmp / "training.json").write_text(json.dumps(
            {"kind": KIND, "parent": parent, "config": asdict(cfg), "history": hist, "data": data},
            ensure_ascii=False, indent=1, default=str), "utf-8")
        (tmp / "README.md").write_text(
            f"# Shiren LoRA adapter `{out_dir.name}` (feedback round)\n\n"
            f"- base model: `{base_name}`\n- parent adapter: `{parent or 'none (fresh LoRA)'}`\n"
            f"- method: DPO (TRL DPOTrainer, beta {cfg.beta}) + SFT term (weight {cfg.sft_weight}), "
            f"lr {cfg.lr}, {hist['steps']} steps × batch {cfg.batch_size}\n"
            f"- data: {data.get('pairs', 0)} preference pairs ({data.get('pairs_rated', 0)} from rated poems, "
            f"{data.get('pairs_fresh', 0)} against fresh samples) from {data.get('ratings', 0)} ratings\n"
            f"- DPO loss {hist.get('loss_first')} → {hist.get('loss_last')}; reward margin {hist.get('margin_last')}\n",
            "utf-8")


# ---- evaluation ---------------------------------------------------------------------------------------

def evaluate_poet(poet, requests: list[PoemRequest], preference: Callable[[str], float]) -> dict[str, Any]:
    """Score one poem per request (fixed seeds): format, rhyme, tone, repeated-char rate, preference."""
    from training.evaluate import score_poem

    rows, failed = [], 0
    by_request: list[float | None] = []  # aligned with `requests`, for paired comparisons
    for req in requests:
        try:
            norm = poet.validate(req)
            text = poet.write(norm)[0].text
        except ShirenError:
            failed += 1
            by_request.append(None)
            continue
        s = score_poem(text, norm, poet.corpus_lines)
        s["pref"] = float(preference(text))
        s["text"] = text
        rows.append(s)
        by_request.append(s["pref"])

    def rate(key):
        vals = [bool(r[key]) for r in rows if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    n = max(1, len(rows))
    return {
        "n": len(rows), "failed": failed, "format": rate("format"), "rhyme": rate("rhyme"), "tone": rate("tone"),
        "repeat": sum(r["repeat"] for r in rows) / n, "preference": sum(r["pref"] for r in rows) / n,
        "pref_values": [round(r["pref"], 4) for r in rows], "texts": [r["text"] for r in rows],
        "pref_by_request": by_request,
    }


def gate_reasons(active: dict, cand: dict, min_pref_gain: float = 0.0) -> list[str]:
    """Why the candidate may not be promoted (empty: every gate passes)."""
    eps = 1e-9
    reasons = []
    if cand["failed"] > active["failed"]:
        reasons.append(f"failed requests rose {active['failed']} → {cand['failed']}")
    for key in ("format", "rhyme", "tone"):
        a, c = active.get(key), cand.get(key)
        if a is not None and (c is None or c < a - eps):
            reasons.append(f"{key} dropped {a:.3f} → {(c or 0):.3f}")
    if cand["repeat"] > active["repeat"] + eps:
        reasons.append(f"repeated-char rate rose {active['repeat']:.4f} → {cand['repeat']:.4f}")
    if not cand["preference"] > active["preference"] + min_pref_gain:
        reasons.append(f"preference did not improve {active['preference']:.3f} → {cand['preference']:.3f}"
                       + (f" (needs > +{min_pref_gain})" if min_pref_gain else ""))
    else:
        # "Measurably helps": the same requests and seeds on both sides, so the gain is paired; its 95%
        # bootstrap interval must lie above the required gain, not just its mean.
        pairs = [c - a for a, c in zip(active.get("pref_by_request") or [], cand.get("pref_by_request") or [],
                                       strict=False) if a is not None and c is not None]
        if len(pairs) < MIN_PAIRED_REQUESTS:
            reasons.append(f"too few held-out poems on both sides to measure the gain ({len(pairs)} < "
                           f"{MIN_PAIRED_REQUESTS})")
        else:
            mean, lo, hi = bootstrap_ci(pairs)
            if not lo > min_pref_gain:
                reasons.append(f"preference gain +{mean:.3f} is not measurable: 95% interval [{lo:.3f}, {hi:.3f}] "
                               f"over {len(pairs)} paired poems reaches {min_pref_gain:g}")
    return reasons


def _summary(m: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k not in ("pref_values", "texts", "pref_by_request")}


# ---- the round ----------------------------------------------------------------------------------------

def run_feedback_round(
    store,
    base_dir: Path | None = None,
    *,
    min_new_ratings: int = 20,
    force: bool = False,
    eval_requests: list[PoemRequest] | None = None,
    preference: Callable[[str], float] | None = None,
    config: FeedbackConfig | None = None,
    progress: Progress | None = None,
    home: Path | None = None,
) -> FeedbackResult:
    """One round (see the module doc). Never raises for a failed round: the result says "failed" and why;
    raises FeedbackBusyError (a ShirenError) when another round is running."""
    from core import paths

    cfg = config or FeedbackConfig()
    base_dir = Path(base_dir or paths.model_dir())
    home = Path(home or paths.data_home())
    adapters_dir = home / "adapters"
    say = progress or (lambda f, line: None)
    t0 = time.time()
    with feedback_lock(home):
        cleanup_interrupted(store, adapters_dir)
        rated = store.rated_poems()
        new, total = count_new_ratings(store, rated)
        if new < min_new_ratings and not force:
            msg = f"{new} new ratings since the last round; {min_new_ratings} needed (use --force to train anyway)"
            say(1.0, msg)
            return FeedbackResult("skipped", msg, data={"new_ratings": new, "ratings": total})
        parent_name, parent_path = active_source(store)
        run_id = store.start_run(KIND, {"new_ratings": new, "ratings": total, "parent": parent_name})
        say(0.02, f"run #{run_id}: {new} new of {total} ratings; starting from {parent_name or 'the bare base model'}")
        state: dict[str, Path] = {}  # the candidate folder, once named (removed on failure if unregistered)
        registered = False
        old_threads = None
        try:
            import torch

            if cfg.threads:
                old_threads = torch.get_num_threads()
                torch.set_num_threads(cfg.threads)
            res = _round(store, base_dir, adapters_dir, parent_name, parent_path, rated, cfg, eval_requests,
                         preference, say, run_id, state)
            registered = True
            res_obj = FeedbackResult(**res, run_id=run_id, seconds=round(time.time() - t0, 1))
            res_obj.data.update(new_ratings=new)
            store.finish_run(run_id, res_obj.outcome, metrics={**res_obj.metrics, "data": res_obj.data,
                                                                "reasons": res_obj.reasons,
                                                                "seconds": res_obj.seconds},
                             error=("kept as candidate: " + "; ".join(res_obj.reasons)) if res_obj.reasons else None,
                             adapter=res_obj.adapter)
            say(1.0, res_obj.message)
            return res_obj
        except Exception as e:  # noqa: BLE001 — any failure: recorded, nothing visible changed
            out_dir = state.get("out_dir")
            if out_dir is not None and not registered and not _is_registered(store, out_dir.name):
                shutil.rmtree(out_dir, ignore_errors=True)
            err = f"{type(e).__name__}: {e}"[:2000]
            with contextlib.suppress(Exception):
                store.finish_run(run_id, "failed", error=err)
            say(1.0, f"failed: {err}")
            return FeedbackResult("failed", f"feedback round failed: {err}", run_id=run_id, parent=parent_name,
                                  seconds=round(time.time() - t0, 1))
        finally:
            if old_threads is not None:
                torch.set_num_threads(old_threads)


def _is_registered(store, name: str) -> bool:
    try:
        return any(a.name == name for a in store.list_adapters())
    except Exception:  # noqa: BLE001
        return False


def _round(store, base_dir, adapters_dir, parent_name, parent_path, rated, cfg, eval_requests, preference, say,
           run_id, state) -> dict:
    from core.poet import Poet
    from training.preference import StarsProxy, build_preference_data

    say(0.04, "loading the active poet")
    active_poet = Poet.load(base_dir, adapter=parent_path)
    if preference is None:  # the critic judges: its rating head once ratings suffice, else human-likeness
        from training.critic_heads import reward_for_feedback

        preference, pref_source = reward_for_feedback(rated, active_poet.critic)
    else:
        pref_source = getattr(preference, "__name__", "custom")
    say(0.06, "building preference pairs")
    pairs, data = build_preference_data(rated, active_poet, n_fresh=cfg.n_fresh, seed=cfg.seed, judge=preference)
    data["pairs"] = len(pairs)
    say(0.12, f"{len(pairs)} pairs ({data['pairs_rated']} rated, {data['pairs_fresh']} fresh) "
              f"from {data['ratings']} ratings")
    if not pairs:
        raise ShirenError("no preference pairs: rate several poems of the same request differently, "
                          "or give some poems 4-5 or 1-2 stars")
    if preference is None:  # no critic: the bag-of-characters ridge proxy of before
        proxy = StarsProxy.fit(rated)
        preference, pref_source = proxy.predict, f"stars proxy fitted on {len(rated)} ratings"
    requests = eval_requests if eval_requests is not None else default_eval_requests()
    say(0.13, f"evaluating the active poet on {len(requests)} fixed requests")
    active_m = evaluate_poet(active_poet, requests, preference)
    active_poet.close()
    del active_poet

    base, tok = load_base(base_dir)
    workdir = Path(tempfile.mkdtemp(prefix="shiren-dpo-"))
    try:
        model, hist = train_dpo(base, tok, parent_path, [p.as_row() for p in pairs], cfg, say, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    name = new_adapter_name(store, adapters_dir)
    out_dir = adapters_dir / name
    state["out_dir"] = out_dir
    say(0.72, f"saving candidate {name}")
    from core.adapters import base_ref

    save_candidate(model, out_dir, base_ref(base_dir), parent_name, cfg, hist, data)
    del model, base

    say(0.75, "evaluating the candidate on the same requests")
    cand_poet = Poet.load(base_dir, adapter=out_dir)
    cand_m = evaluate_poet(cand_poet, requests, preference)
    cand_poet.close()
    reasons = gate_reasons(active_m, cand_m, cfg.min_pref_gain)
    metrics = {"active": _summary(active_m), "candidate": _summary(cand_m), "preference_metric": pref_source,
               "train": {k: v for k, v in hist.items() if k != "log"}, "run_id": run_id}
    store.add_adapter(name, str(out_dir), parent_name, metrics, status="candidate")
    if not reasons:
        if parent_name is not None and parent_path is not None and not _is_registered(store, parent_name):
            # The shipped default was never in the database: register it so `rollback` can return to it.
            store.add_adapter(parent_name, str(parent_path), None, {"shipped": True}, status="retired")
        store.promote(name)
        outcome = "promoted"
        msg = (f"promoted {name}: preference {active_m['preference']:.3f} → {cand_m['preference']:.3f}, "
               f"format/rhyme/tone held")
    else:
        outcome = "candidate"
        msg = f"{name} stays a candidate: " + "; ".join(reasons)
    return {"outcome": outcome, "message": msg, "adapter": name, "parent": parent_name, "reasons": reasons,
            "data": data, "metrics": metrics}


# ---- entry points for the terminal app, the bot and cron ----------------------------------------------

def tui_round(store, progress: Progress | None = None, **kw) -> dict:
    """The terminal app's "train round" (`progress(fraction, line)`): forced (the user asked for it)."""
    kw.setdefault("force", True)
    return run_feedback_round(store, progress=progress, **kw).to_dict()


def bot_round(store=None, *, min_new_ratings: int = 0, on_promoted: Callable[[], None] | None = None,
              **kw) -> dict:
    """The bot's /retrain (sync, run in a thread): returns a short dict. `on_promoted` (e.g. reload the
    poet) runs after a promotion."""
    own = store is None
    if own:
        from db.store import open_store

        store = open_store()
    try:
        r = run_feedback_round(store, min_new_ratings=min_new_ratings, force=min_new_ratings <= 0, **kw)
    finally:
        if own:
            store.close()
    if r.outcome == "promoted" and on_promoted is not None:
        on_promoted()
    out = {"outcome": r.outcome, "message": r.message, "adapter": r.adapter, "seconds": r.seconds}
    if r.metrics:
        out["active"] = {k: r.metrics["active"].get(k) for k in ("format", "rhyme", "tone", "repeat", "preference")}
        out["candidate"] = {k: r.metrics["candidate"].get(k)
                            for k in ("format", "rhyme", "tone", "repeat", "preference")}
    return out
