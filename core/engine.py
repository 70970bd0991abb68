"""The fast decode engine: many requests, one KV cache, one forward per step, vectorised masks.

Each request becomes a Job: its rows (candidates) hold slots of the model's KV cache, its plan is
turned into per-slot tensors once, and its constraint state (still-possible templates, rhyme
classes, used chars) lives in small tensors. A step is one forward for every row of every job
(core.fastc's C kernel, or core.fastlm in PyTorch), the masks and their update per job, and one
sampling call for all rows (C), or the same rules as tensor ops where the kernel is not built. Jobs
of different forms and lengths join and leave the batch between steps (core.batcher). The masks are
the same rules as core.generate (the reference path), applied to whole batches at once.

On a GPU the same torch rules run on the device: EngineVocab(vi, device) holds its tensors there,
each job's plan tensors and constraint state follow it (init_job), and the forward (FastLlama on the
device) and the sampler (core.generate.sample → sample_torch) keep logits and tokens there. Each job's
uniforms still come from its own CPU generator, so a seed draws the same numbers on every device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.contrast import Contrast, contrastive_logits, require_amateur, token_logprob
from core.cpu_share import FreeCores
from core.device import canonical
from core.fastc import CConstraints, CFastLlama, c_sample, load_kernel
from core.fastlm import FastLlama
from core.generate import VocabIndex, sample
from core.plan import Plan
from core.smc import DEAD, Resample, legal_log_mass, resamples_here, systematic

MARK_INDEX = {"平": 0, "仄": 1, "中": 2}
SAMPLED, COPIED = -1, -2  # PlanTensors.forced_list codes besides token ids


class EngineVocab:
    """VocabIndex facts as dense tensors; rhyme classes of 近体 and 词 share one class axis."""

    def __init__(self, vi: VocabIndex, device: torch.device | str = "cpu", kernel: bool = True):
        """`device`: where the masks are computed (the engine's forward device). `kernel`: the C rules
        where they build (CPU only); False keeps the torch rules, as a GPU runs them."""
        self.vi = vi
        self.device = canonical(device)
        self.content, self.ping, self.ze = vi.content, vi.ping & vi.content, vi.ze & vi.content
        self.any_p, self.any_z = vi.ping, vi.ze  # a char's tone classes by any reading (what _update reads)
        self.names = {k: vi.classes[k] for k in ("近体", "词")}
        self.offset = {"近体": 0, "词": len(self.names["近体"])}
        # Membership through a 平 / a 仄 reading (a 词 rhyme rhymes by the reading of its position's tone).
        self.class_p, self.class_z = (torch.cat([vi.class_matrix_tone["近体"][t], vi.class_matrix_tone["词"][t]], 0) > 0
                                      for t in ("平", "仄"))
        self.class_p_f, self.class_z_f = self.class_p.float(), self.class_z.float()
        self.n_classes = self.class_p.shape[0]
        if self.device.type != "cpu":  # the same tensors on the device; the C rules read host memory only
            for name in ("content", "ping", "ze", "any_p", "any_z", "class_p", "class_z", "class_p_f", "class_z_f"):
                setattr(self, name, getattr(self, name).to(self.device))
            kernel = False
        lib = load_kernel() if kernel else None  # the same rules in C, where it builds: ~100x fewer tensor ops per step
        self.c = CConstraints(lib, self.content, self.ping, self.ze, self.class_p, self.class_z) \
            if lib is not None else None


@dataclass
class PlanTensors:
    forced: torch.Tensor  # (S,) token id, or -1 where the model samples
    marks: torch.Tensor  # (S, NT, 3) bool over 平/仄/中 (relaxed marks at fixed chars, strict elsewhere)
    rhyme: torch.Tensor  # (S, NT) bool
    kind: str
    fixed_chars: torch.Tensor  # (k,) ids of the user-fixed (content) characters, never reused elsewhere
    copy_of: list[int] = field(default_factory=list)  # 叠句: the slot each slot repeats, or -1
    # Per slot, read every step: a token id (forced), SAMPLED, or COPIED (each row repeats its own char).
    forced_list: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.forced_list = [COPIED if c >= 0 else f for f, c in zip(self.forced.tolist(), self.copy_of or
                                                                  [-1] * len(self.forced), strict=True)]

    def to(self, device: torch.device) -> PlanTensors:
        """These tensors on `device` (self when they are there already)."""
        if self.marks.device == device:
            return self
        return PlanTensors(self.forced.to(device), self.marks.to(device), self.rhyme.to(device), self.kind,
                           self.fixed_chars.to(device), list(self.copy_of))


def plan_tensors(plan: Plan, vi: VocabIndex) -> PlanTensors:
    S, NT = len(plan.slots), plan.n_templates
    forced = torch.full((S,), -1, dtype=torch.long)
    marks = torch.zeros((S, NT, 3), dtype=torch.bool)
    rhyme = torch.zeros((S, NT), dtype=torch.bool)
    for i, s in enumerate(plan.slots):
        if s.kind == "punct":
            forced[i] = vi.char_id(s.text)
            marks[i, :, 2] = True
            continue
        if s.fixed:
            forced[i] = vi.char_id(s.fixed)
        ms = s.relaxed if s.fixed else s.marks
        for t in range(NT):
            marks[i, t, MARK_INDEX[ms[t]]] = True
            rhyme[i, t] = s.rhyme[t]
    fixed = torch.tensor(sorted({i for s in plan.slots if s.kind == "char" and s.fixed
                                 for i in [vi.char_id(s.fixed)] if vi.content[i]}), dtype=torch.long)
    return PlanTensors(forced, marks, rhyme, "词" if plan.form == "词" else "近体", fixed,
                       [s.copy_of if s.kind == "char" else -1 for s in plan.slots])


@dataclass
class Job:
    """One request's rows in flight."""

    plan: Plan
    pt: PlanTensors
    prompt_ids: list[int]
    n_rows: int
    temperature: float
    top_p: float
    seed: int
    rows: torch.Tensor | None = None  # cache slots
    slot: int = 0
    pos: int = 0  # tokens fed so far (same for all rows of a job)
    logits: torch.Tensor | None = None
    expert_logits: torch.Tensor | None = None  # under contrastive decoding: the expert's own (for logprob)
    gen: torch.Generator = field(default_factory=torch.Generator)
    # constraint state
    alive: torch.Tensor | None = None
    groups: torch.Tensor | None = None
    used: torch.Tensor | None = None
    logprob: torch.Tensor | None = None
    logw: torch.Tensor | None = None  # (b,) float64 importance weights since the last resampling (core.smc)
    n_sampled: int = 0
    failed: torch.Tensor | None = None
    out: torch.Tensor | None = None
    cancelled: bool = False
    payload: object = None  # the caller's handle (request, future …)

    @property
    def done(self) -> bool:
        return self.slot >= len(self.plan.slots)


@dataclass
class RowResult:
    logprob: float
    n_sampled: int
    failed: bool


class Engine:
    def __init__(self, fast: FastLlama | CFastLlama, ev: EngineVocab, cores: FreeCores | None = None,
                 amateur: FastLlama | CFastLlama | None = None, contrast: Contrast | None = None,
                 resample: Resample | None = None):
        """`amateur` with `contrast`: contrastive decoding (core.contrast); the amateur is fed the same
        tokens into the same cache rows, so it needs the same vocabulary and at least as many rows.
        `resample`: each job's rows are resampled by weight at clause ends (core.smc)."""
        self.fast, self.ev = fast, ev
        require_amateur(contrast, amateur)
        if amateur is not None and amateur.max_rows < fast.max_rows:
            raise ValueError(f"the amateur has {amateur.max_rows} cache rows, the expert {fast.max_rows}")
        self.amateur, self.contrast, self.resample = amateur, contrast, resample
        self.free = list(range(fast.max_rows))
        self.jobs: list[Job] = []
        # Threads per step follow the cores other processes leave free (core.cpu_share): a barrier
        # waiting on a busy core costs more than the second thread saves.
        self.cores = cores or FreeCores()
        self.threads = 0

    def _amateur_on(self) -> FastLlama | CFastLlama | None:
        return self.amateur if self.contrast is not None else None

    def set_contrast(self, contrast: Contrast | None) -> None:
        """Contrastive decoding from the next job on (None: off); only between runs, as the amateur's
        cache rows are filled only while it is on."""
        require_amateur(contrast, self.amateur)
        if self.jobs:
            raise RuntimeError("cannot change contrastive decoding while jobs are decoding")
        self.contrast = contrast

    def set_resample(self, resample: Resample | None) -> None:
        """Resampling at clause ends (core.smc) from the next job on (None: off); only between runs."""
        if self.jobs:
            raise RuntimeError("cannot change resampling while jobs are decoding")
        self.resample = resample

    def _fit_threads(self) -> None:
        if self.ev.device.type != "cpu":  # a GPU step: no CPU thread team to size
            return
        n = self.cores.threads()
        if n == self.threads:
            return
        # This thread's OpenMP teams (steps run on one thread): the forward's kernel, and the masks' and
        # sampler's (the same library, except beside a torch forward or a kernel built otherwise).
        for lib in dict.fromkeys(x for x in (getattr(self.fast, "lib", None), load_kernel()) if x is not None):
            lib.shiren_set_threads(n)
        if not isinstance(self.fast, CFastLlama):
            torch.set_num_threads(n)
        self.threads = n

    # ---- admission --------------------------------------------------------------------
    def init_job(self, job: Job) -> None:
        ev, b, NT = self.ev, job.n_rows, job.plan.n_templates
        dev = ev.device  # the constraint state lives where the masks are computed
        job.pt = job.pt.to(dev)
        job.gen.manual_seed(job.seed)
        job.alive = torch.zeros((b, NT), dtype=torch.bool, device=dev)
        job.alive[:, sorted(job.plan.templates)] = True
        names = ev.names[job.pt.kind]
        allowed = set(job.plan.groups) if job.plan.groups else set(names)
        job.groups = torch.zeros((b, ev.n_classes), dtype=torch.bool, device=dev)
        off = ev.offset[job.pt.kind]
        idx = [off + i for i, g in enumerate(names) if g in allowed]
        if idx:
            job.groups[:, idx] = True
        job.used = torch.zeros((b, ev.vi.size), dtype=torch.bool, device=dev)
        job.used[:, job.pt.fixed_chars] = True
        job.logprob = torch.zeros(b, device=dev)
        job.logw = torch.zeros(b, dtype=torch.float64, device=dev)
        job.failed = torch.zeros(b, dtype=torch.bool, device=dev)
        job.out = torch.zeros((b, len(job.plan.slots)), dtype=torch.long, device=dev)

    def can_admit(self, job: Job) -> bool:
        return len(self.free) >= job.n_rows

    def admit(self, job: Job) -> None:
        """Give the job cache rows and feed its prompt (prefill)."""
        self.admit_many([job])

    def admit_many(self, jobs: list[Job]) -> None:
        """Admit several jobs; prompts of the same length are prefilled in one forward."""
        by_len: dict[int, list[Job]] = {}
        for job in jobs:
            self.init_job(job)
            job.rows = torch.tensor([self.free.pop() for _ in range(job.n_rows)])
            by_len.setdefault(len(job.prompt_ids), []).append(job)
        for n, group in by_len.items():
            # A job's rows share its prompt: prefill one row per job, then copy its cache to the others
            # (at n=64, 128 rows × the prompt were ~5 steps' worth of forwards; the copy is a memcpy).
            ids = torch.tensor([j.prompt_ids for j in group])  # (G, n)
            firsts = torch.stack([j.rows[0] for j in group])
            self._feed(group, ids, firsts, torch.zeros(len(group), dtype=torch.long), shared=True)
            for fast in (self.fast, self._amateur_on()):
                if fast is None:
                    continue
                kv = fast.kv  # (n_layer, max_rows, max_len, ·), the same layout in both forwards
                for j in group:
                    if j.n_rows > 1:
                        kv[:, j.rows[1:].to(kv.device), :n] = kv[:, j.rows[:1].to(kv.device), :n]
            for j in group:
                j.pos = n
        self.jobs.extend(jobs)

    def release(self, job: Job) -> None:
        if job.rows is not None:
            self.free.extend(int(r) for r in job.rows)
            job.rows = None
        if job in self.jobs:
            self.jobs.remove(job)

    # ---- one step ---------------------------------------------------------------------
    def _mask(self, job: Job) -> torch.Tensor:
        ev, s = self.ev, job.slot
        if ev.c is not None:
            return ev.c.mask(job.pt.marks[s], job.pt.rhyme[s], job.alive, job.groups, job.used, job.failed,
                             job.pt.fixed_chars)
        marks = job.pt.marks[s].float()  # (NT, 3)
        rh = job.pt.rhyme[s]  # (NT,)
        alive = job.alive

        def tones(tmpl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (b, NT) → 平, 仄 allowed (b,)
            a = (tmpl.float() @ marks) > 0  # (b, 3)
            return a[:, 0] | a[:, 2], a[:, 1] | a[:, 2]

        def tone_mask(tmpl: torch.Tensor) -> torch.Tensor:  # (b, NT) → (b, V)
            p, z = tones(tmpl)
            return (p[:, None] & ev.ping[None]) | (z[:, None] & ev.ze[None])

        rhyming = alive & rh
        any_r = rhyming.any(1)
        if not bool(any_r.any()):
            mask = tone_mask(alive)
        else:
            g = job.groups.float()
            in_p, in_z = (g @ ev.class_p_f) > 0, (g @ ev.class_z_f) > 0  # (b, V) via a 平 / 仄 reading
            p, z = tones(rhyming)
            rhyme_ok = (p[:, None] & ev.ping[None] & in_p) | (z[:, None] & ev.ze[None] & in_z)
            other = alive & ~rh
            other_ok = tone_mask(other) & other.any(1, keepdim=True)
            mask = torch.where(any_r[:, None], rhyme_ok | other_ok, tone_mask(alive))
        legal = mask & ev.content
        mask = legal & ~job.used
        empty = ~mask.any(1)
        if bool(empty.any()):  # dead end: allow a repeated char, then anything (the row is marked failed)
            for b in empty.nonzero().flatten().tolist():
                job.used[b] = False
                job.used[b, job.pt.fixed_chars] = True
                mask[b] = legal[b] & ~job.used[b]
                if not bool(mask[b].any()):
                    job.failed[b] = True
                    mask[b] = ev.content
        return mask

    def _update(self, job: Job, tok: torch.Tensor) -> None:
        """Narrow templates and rhyme classes after `tok` (b,) went into the current slot."""
        ev, s = self.ev, job.slot
        marks = job.pt.marks[s]  # (NT, 3)
        rh = job.pt.rhyme[s]
        if ev.c is not None:
            ev.c.update(marks, rh, tok, job.alive, job.groups, job.used, job.failed)
            return
        tp, tz = ev.any_p[tok], ev.any_z[tok]  # (b,) the char's tone classes (any reading)
        ok = marks[None, :, 2] | (marks[None, :, 0] & tp[:, None]) | (marks[None, :, 1] & tz[:, None])
        keep = job.alive & ok
        rhyming = keep & rh
        any_r = rhyming.any(1)
        all_r = any_r & ~(keep & ~rh).any(1)
        mixed = any_r & ~all_r
        a = (rhyming.float() @ marks.float()) > 0  # (b, 3): the rhyme's tone, from the rhyming templates
        rp, rz = a[:, 0] | a[:, 2], a[:, 1] | a[:, 2]
        keys = (rp[:, None] & ev.class_p[:, tok].t()) | (rz[:, None] & ev.class_z[:, tok].t())  # (b, G)
        newg = job.groups & keys
        has = newg.any(1)
        choose = mixed & has & tp
        keep = torch.where(mixed[:, None], torch.where(choose[:, None], rhyming, keep & ~rh), keep)
        upd_groups = (all_r & has) | choose
        job.groups = torch.where(upd_groups[:, None], newg, job.groups)
        job.failed |= all_r & ~has
        alive_any = keep.any(1)
        job.failed |= ~alive_any
        job.alive = torch.where(alive_any[:, None], keep, job.alive)
        content = ev.content[tok]
        job.used[torch.arange(len(tok), device=tok.device)[content], tok[content]] = True

    def choose(self, job: Job) -> torch.Tensor:
        """Tokens (b,) for the job's current slot, from its latest logits."""
        return self._choose_all([job])[0]

    def _choose_all(self, jobs: list[Job]) -> list[torch.Tensor]:
        """Each job's tokens for its current slot. Jobs that sample do it in one call of the C sampler
        (rows are independent, and each job draws its uniforms from its own generator, so a job's
        poems do not depend on who shares the step)."""
        toks: list[torch.Tensor | None] = [None] * len(jobs)
        sampling = []
        for i, job in enumerate(jobs):
            f = job.pt.forced_list[job.slot]
            if resamples_here(job.plan.slots, job.slot, job.logw, self.resample):
                self._resample(job)
            if f >= 0:
                toks[i] = torch.full((job.n_rows,), f, dtype=torch.long, device=job.out.device)
                if job.plan.slots[job.slot].kind == "char":
                    self._update(job, toks[i])
            elif f == COPIED:  # 叠句: every row repeats the char it wrote at the source slot
                toks[i] = job.out[:, job.pt.copy_of[job.slot]].clone()
                self._update(job, toks[i])
            else:
                sampling.append(i)
        if len(sampling) > 1 and self.ev.c is not None:
            js = [jobs[i] for i in sampling]
            masks = [self._mask(j) for j in js]
            u = torch.cat([torch.rand(j.n_rows, generator=j.gen, dtype=torch.float64) for j in js])
            temps = torch.tensor([j.temperature for j in js], dtype=torch.float64).repeat_interleave(
                torch.tensor([j.n_rows for j in js]))
            tops = torch.tensor([j.top_p for j in js], dtype=torch.float64).repeat_interleave(
                torch.tensor([j.n_rows for j in js]))
            tok, logp = c_sample(load_kernel(), torch.cat([j.logits for j in js]), torch.cat(masks), temps, tops, u)
            parts = list(zip(tok.split([j.n_rows for j in js]), logp.split([j.n_rows for j in js]), strict=True))
        else:
            parts, masks = [], []
            for i in sampling:
                j = jobs[i]
                masks.append(self._mask(j))
                parts.append(sample(j.logits, masks[-1], j.temperature, j.top_p, j.gen))
        for i, (tok, logp), mask in zip(sampling, parts, masks, strict=True):
            job = jobs[i]
            if self.resample is not None:  # the poet's own mass on the legal set (before the contrast)
                expert = job.expert_logits if job.expert_logits is not None else job.logits
                job.logw += legal_log_mass(expert, mask, job.temperature).to(job.logw.device)
            if job.expert_logits is not None:  # contrastive: sampled from the contrast, ranked by the expert
                logp = token_logprob(job.expert_logits, tok)
            job.logprob += logp
            job.n_sampled += 1
            self._update(job, tok)
            if self.resample is not None:
                job.logw = torch.where(job.failed, torch.full_like(job.logw, DEAD), job.logw)
            toks[i] = tok
        for job, tok in zip(jobs, toks, strict=True):
            job.out[:, job.slot] = tok
            job.slot += 1
        return toks

    def _resample(self, job: Job) -> None:
        """Replace the job's rows by a weighted resample of themselves (core.smc): constraint state, written
        slots and the cache rows of both forwards, up to what has been fed."""
        idx = systematic(job.logw, float(torch.rand(1, generator=job.gen, dtype=torch.float64)))
        dev = job.out.device
        d = idx.to(dev)
        job.alive, job.groups, job.used = job.alive[d], job.groups[d], job.used[d]
        job.logprob, job.failed, job.out = job.logprob[d], job.failed[d], job.out[d]
        job.logw = torch.zeros_like(job.logw)
        for fast in (self.fast, self._amateur_on()):
            if fast is not None:
                kv = fast.kv
                rows = job.rows.to(kv.device)
                kv[:, rows, : job.pos] = kv[:, rows[idx.to(kv.device)], : job.pos]

    def step(self) -> list[Job]:
        """Advance every job by one slot; returns the jobs that finished (their rows released)."""
        for job in [j for j in self.jobs if j.cancelled]:
            self.release(job)
        jobs = list(self.jobs)
        if not jobs:
            return []
        self._fit_threads()
        finished, feeding = [], []
        first = {id(j): j.slot for j in jobs}
        self._choose_all(jobs)
        for job in jobs:
            if job.done:
                finished.append(job)
                self.release(job)
            else:
                feeding.append(job)
        # What each row feeds is read back from its written slots: a resampling at a clause end inside
        # the run below moves a row's not-yet-fed character with the rest of its state.
        chunks = [j.out[:, first[id(j)] : first[id(j)] + 1].contiguous() for j in feeding]
        run = {self._forced_run(j) for j in feeding}
        if len(run) == 1 and (r := run.pop()) > 0:
            # The next r slots of every job are known already (punctuation, fixed or repeated chars): feed
            # them with this token in one forward. At n=1 a step costs one pass over the weights whatever
            # T is, so a 七绝 takes 3 forwards fewer (of ~33). Only when every job has the same run: a
            # batch of mixed jobs keeps one forward per step instead of one per run length.
            for _ in range(r):
                self._choose_all(feeding)
            chunks = [j.out[:, first[id(j)] : j.slot].contiguous() for j in feeding]
            done = [j for j in feeding if j.done]  # the run reached the end: nothing more to feed
            for j in done:
                finished.append(j)
                self.release(j)
            chunks = [c for j, c in zip(feeding, chunks, strict=True) if not j.done]
            feeding = [j for j in feeding if not j.done]
        if len(feeding) == 1:  # one request (a CLI call): no concatenation
            j = feeding[0]
            self._feed(feeding, chunks[0], j.rows, torch.full((j.n_rows,), j.pos, dtype=torch.long))
            j.pos += chunks[0].shape[1]
        elif feeding:
            tokens = torch.cat(chunks)  # (B, T)
            rows = torch.cat([j.rows for j in feeding])
            start = torch.cat([torch.full((j.n_rows,), j.pos, dtype=torch.long) for j in feeding])
            self._feed(feeding, tokens, rows, start)
            for j in feeding:
                j.pos += tokens.shape[1]
        return finished

    @staticmethod
    def _forced_run(job: Job) -> int:
        """How many slots from the job's current one need no sampling (up to its end)."""
        n, fl = 0, job.pt.forced_list
        while job.slot + n < len(fl) and fl[job.slot + n] != SAMPLED:
            n += 1
        return n

    def _feed(self, jobs: list[Job], tokens: torch.Tensor, rows: torch.Tensor, start: torch.Tensor,
              shared: bool = False) -> None:
        """One forward for these jobs' rows; the output projection (a third of a step) only for the jobs
        whose next slot is sampled — before punctuation or a user-fixed character none is needed.
        `shared`: one row per job stands for all its rows (the prompt); its logits go to every row."""
        h = self.fast.hidden(tokens, rows, start, check=False)  # (B, d); the engine's own rows and positions
        # The amateur reads every token too (its cache must follow), its logits only where the expert's are needed.
        amateur = self._amateur_on()
        h_a = amateur.hidden(tokens, rows, start, check=False) if amateur is not None else None
        need = [not j.done and j.pt.forced_list[j.slot] == SAMPLED for j in jobs]
        width = [1 if shared else j.n_rows for j in jobs]
        sel, i = [], 0
        for w, nd in zip(width, need, strict=True):
            if nd:
                sel.extend(range(i, i + w))
            i += w
        if not sel:
            for j in jobs:
                j.logits = j.expert_logits = None
            return
        pick = (lambda x: x) if len(sel) == len(h) else (lambda x: x[torch.tensor(sel, device=x.device)])
        logits = expert = self.fast.logits(pick(h))  # (B', V)
        if h_a is not None:
            logits = contrastive_logits(expert, amateur.logits(pick(h_a)), self.contrast)

        def rows_of(x: torch.Tensor, i: int, w: int, j: Job) -> torch.Tensor:
            part = x[i : i + w]
            return part.repeat(j.n_rows, 1) if shared and j.n_rows > 1 else part

        i = 0
        for j, w, nd in zip(jobs, width, need, strict=True):
            j.logits = rows_of(logits, i, w, j) if nd else None
            j.expert_logits = rows_of(expert, i, w, j) if nd and h_a is not None else None
            i += w if nd else 0

    def run(self, jobs: list[Job]) -> None:
        """Decode these jobs to completion (admitting each as rows free up)."""
        waiting = list(jobs)
        while waiting or self.jobs:
            admit, free = [], len(self.free)
            while waiting and free >= waiting[0].n_rows:
                free -= waiting[0].n_rows
                admit.append(waiting.pop(0))
            if admit:
                self.admit_many(admit)
            if not self.jobs and waiting:
                raise ValueError(f"a job needs {waiting[0].n_rows} rows; the engine has {self.fast.max_rows}")
            self.step()

    @staticmethod
    def results(job: Job) -> list[tuple[list[int], RowResult]]:
        # One host copy per tensor (a GPU job would otherwise sync once per row and field).
        out, logprob, failed = job.out.tolist(), job.logprob.tolist(), job.failed.tolist()
        return [(out[b], RowResult(logprob[b], job.n_sampled, failed[b])) for b in range(job.n_rows)]
