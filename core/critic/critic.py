"""The critic at run time: load the shipped encoder, score poems, say which characters it doubts,
and propose characters for a position (its masked-LM distribution there).

    critic = Critic.load()                       # models/critic, or None-safe: load_or_none()
    critic.score(["床前明月光，…"], ["五绝"])       # (B,) higher is better
    critic.doubt("床前明月光，…", "五绝")            # per character: log p(char | the rest of the poem)

A checkpoint dir holds `config.json` (the CriticConfig, which heads are trained, their metrics),
`model.safetensors` and the tokenizer (`tokenizer.json`), the same character vocabulary as the
dataset the generator is trained on. Characters it does not know read as <unk>.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from core.critic.model import CriticConfig, CriticModel
from core.types import ShirenError

log = logging.getLogger("shiren.critic")

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
# Poem text → model input: newlines are layout only.
_LAYOUT = str.maketrans("", "", "\n ")


# The scores a critic can choose by (CriticCard.score).
SCORES = ("human", "pll")
# Interleaved sets of characters masked together by `Critic.pll` (one forward each).
PLL_FOLDS = 4


class CriticLoadError(ShirenError):
    """The critic folder is missing or unreadable."""


@dataclass
class CriticCard:
    """What config.json says besides the network's shape."""

    model: CriticConfig
    heads: dict[str, bool] = field(default_factory=lambda: {"human": False, "rating": False})
    metrics: dict[str, float] = field(default_factory=dict)
    # What `Critic.score` returns: "human" (the human-likeness logit, when that head is trained) or "pll"
    # (the masked LM's pseudo-log-likelihood, `Critic.pll`). Chosen by which readers agree with (docs/critic.md).
    score: str = "human"

    def to_json(self) -> str:
        return json.dumps({"model": asdict(self.model), "heads": self.heads, "metrics": self.metrics,
                           "score": self.score}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> CriticCard:
        d = json.loads(text)
        score = d.get("score", "human")
        if score not in SCORES:
            raise ValueError(f"unknown critic score {score!r} (one of {', '.join(SCORES)})")
        return cls(CriticConfig(**d["model"]), dict(d.get("heads", {})), dict(d.get("metrics", {})), score)


class CharVocab:
    """Char ↔ id of a character-level tokenizer.json (WordLevel, one id per character)."""

    def __init__(self, tokenizer_json: dict):
        vocab = dict(tokenizer_json["model"]["vocab"])
        for t in tokenizer_json.get("added_tokens", []):
            vocab[t["content"]] = t["id"]
        self.tok_to_id = vocab
        self.size = max(vocab.values()) + 1
        self.id_to_tok = [""] * self.size
        for t, i in vocab.items():
            self.id_to_tok[i] = t
        self.pad, self.unk, self.bos, self.eos = (vocab[t] for t in ("<pad>", "<unk>", "<bos>", "<eos>"))

    def form_id(self, form: str) -> int:
        return self.tok_to_id.get(f"<{form}>", self.tok_to_id.get("<古体>", self.unk))

    def encode(self, text: str, form: str) -> list[int]:
        """<bos> <form> chars <eos>; the poem's k-th non-layout char is at position k + 2."""
        body = [self.tok_to_id.get(c, self.unk) for c in text.translate(_LAYOUT)]
        return [self.bos, self.form_id(form), *body, self.eos]


BODY_OFFSET = 2  # <bos> <form>
_THREADS_LOCK = threading.Lock()


def char_mask(vocab: CharVocab) -> torch.Tensor:
    """(V + 1,) True at the ids that are characters — what the masked LM learns to predict — not
    punctuation or control tokens; the last id, [MASK], is False."""
    from core.generate import _is_cjk

    return torch.tensor([bool(_is_cjk(t)) for t in vocab.id_to_tok] + [False])


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the critic's forward on one intra-op thread. Its matrices are small (tens of rows): splitting
    them across threads costs more than it saves, and on a busy CPU the split waits for a core that is
    running something else (measured here: 16 poems in 30 ms on one thread, 380 ms on two)."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        if before > 1:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if before > 1:
                torch.set_num_threads(before)


class Critic:
    """Thread-safe for reading (inference only). Its forward runs on `device` (the CPU unless moved with
    `to`, as the poet does on a GPU); what it returns is always on the CPU."""

    def __init__(self, model: CriticModel, vocab: CharVocab, card: CriticCard, path: Path | None = None):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.vocab = vocab
        self.card = card
        self.path = path
        self.has_human = bool(card.heads.get("human"))
        self.has_rating = bool(card.heads.get("rating"))
        self._content = char_mask(vocab)

    # ---- loading and saving ------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | None = None) -> Critic:
        from safetensors.torch import load_file

        from core import paths

        path = Path(path or paths.critic_dir())
        try:
            card = CriticCard.from_json((path / CONFIG_FILE).read_text("utf-8"))
            vocab = CharVocab(json.loads((path / TOKENIZER_FILE).read_text("utf-8")))
            model = CriticModel(card.model)
            sd = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
            model.load_state_dict(sd)
        except FileNotFoundError as e:
            raise CriticLoadError(f"no critic at {path} ({Path(e.filename).name} missing)") from e
        except Exception as e:  # noqa: BLE001 - any parse failure is an unusable folder
            raise CriticLoadError(f"cannot load the critic at {path}: {type(e).__name__}: {e}") from e
        if vocab.size + 1 != card.model.vocab_size:
            raise CriticLoadError(f"the critic at {path} does not match its tokenizer")
        return cls(model, vocab, card, path)

    def to(self, device: torch.device | str) -> Critic:
        """Move the network to `device` (in place); returns self."""
        self.model.to(device)
        self.device = next(self.model.parameters()).device
        return self

    @classmethod
    def load_or_none(cls, path: Path | None = None) -> Critic | None:
        """The critic, or None with one log line saying why (Shiren then writes without it)."""
        try:
            return cls.load(path)
        except CriticLoadError as e:
            log.warning("writing without the critic: %s", e)
            return None

    def save(self, path: Path, dtype: torch.dtype = torch.bfloat16, tokenizer_json: dict | None = None) -> None:
        """config.json + model.safetensors (in `dtype`) + tokenizer.json, atomically."""
        from safetensors.torch import save_file

        from core.atomic import atomic_dir

        with atomic_dir(Path(path)) as tmp:
            sd = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.model.state_dict().items()}
            save_file(sd, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(self.card.to_json(), "utf-8")
            tj = tokenizer_json if tokenizer_json is not None else json.loads((self.path / TOKENIZER_FILE).read_text("utf-8"))
            (tmp / TOKENIZER_FILE).write_text(json.dumps(tj, ensure_ascii=False), "utf-8")

    # ---- reading poems -----------------------------------------------------------------
    def batch(self, texts: list[str], forms: list[str]) -> torch.Tensor:
        """(B, T) padded ids, cut at the model's block size, on the critic's device."""
        seqs = [self.vocab.encode(t, f)[: self.card.model.block_size] for t, f in zip(texts, forms, strict=True)]
        T = max(len(s) for s in seqs)
        out = torch.full((len(seqs), T), self.vocab.pad, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s)
        return out.to(self.device)

    @torch.inference_mode()
    def score(self, texts: list[str], forms: list[str]) -> torch.Tensor:
        """(B,) the critic's score, higher is better: what its card names (`CriticCard.score`) — the
        human-likeness logit where that head is trained, or the pseudo-log-likelihood (`pll`); with neither,
        the mean log-probability of each char with the whole poem visible (a weak stand-in)."""
        ids = self.batch(texts, forms)
        if self.card.score == "pll":
            return self._pll(ids, PLL_FOLDS).cpu()
        with one_thread():
            return self._score(ids).cpu()

    def _score(self, ids: torch.Tensor) -> torch.Tensor:
        if self.has_human:
            return self.model.heads(ids)[0]
        h = self.model.hidden(ids)
        lp = torch.log_softmax(self.model.mlm_logits(h), -1).gather(-1, ids[..., None]).squeeze(-1)
        real = (ids != self.vocab.pad) & (torch.arange(ids.shape[1], device=ids.device) >= BODY_OFFSET)
        return (lp * real).sum(1) / real.sum(1).clamp_min(1)

    @torch.inference_mode()
    def pll(self, texts: list[str], forms: list[str], folds: int = PLL_FOLDS) -> torch.Tensor:
        """(B,) pseudo-log-likelihood: mean ln P of each character under the masked LM with it masked.
        Masking one character at a time costs a forward per character; here the characters are split into
        `folds` interleaved sets (every `folds`-th one) masked together, so `folds` forwards per poem, each
        with about 1/`folds` of the poem hidden (the training mask rate's neighbourhood)."""
        return self._pll(self.batch(texts, forms), folds).cpu()

    def _pll(self, ids: torch.Tensor, folds: int) -> torch.Tensor:
        B, T = ids.shape
        body = torch.arange(T, device=ids.device) >= BODY_OFFSET
        content = self._content.to(ids.device)[ids] & body & (ids != self.vocab.pad)
        rank = content.long().cumsum(1) - 1  # each character's index among the poem's characters
        rows = ids.repeat(folds, 1)
        which = torch.cat([content & (rank % folds == f) for f in range(folds)])
        targets = rows[which]
        rows[which] = self.card.model.mask_id
        with one_thread():
            h = self.model.hidden(rows)[which]
            lp = torch.log_softmax(self.model.mlm_logits(h), -1).gather(-1, targets[:, None])[:, 0]
        owner = torch.arange(B, device=ids.device).repeat(folds)[:, None].expand(-1, T)[which]  # row r: poem r % B
        tot = torch.zeros(B, device=ids.device).index_add_(0, owner, lp)
        return tot / content.sum(1).clamp_min(1)

    @torch.inference_mode()
    def rating(self, texts: list[str], forms: list[str]) -> torch.Tensor:
        """(B,) predicted stars (centred on the training mean; compare, do not read as stars)."""
        with one_thread():
            return self.model.heads(self.batch(texts, forms))[1].cpu()

    @torch.inference_mode()
    def masked_logprobs(self, text: str, form: str, positions: list[int]) -> torch.Tensor:
        """(len(positions), V) log-probabilities of the masked LM at each given body position (the k-th
        char of the poem, punctuation included), each masked on its own, the rest of the poem visible."""
        ids = self.batch([text], [form])[0]
        rows = ids.repeat(len(positions), 1)
        cols = torch.tensor(positions, device=ids.device) + BODY_OFFSET
        ar = torch.arange(len(positions), device=ids.device)
        rows[ar, cols] = self.card.model.mask_id
        with one_thread():
            h = self.model.hidden(rows)[ar, cols]  # (P, d)
            return torch.log_softmax(self.model.mlm_logits(h), -1).cpu()

    @torch.inference_mode()
    def glance(self, text: str, form: str, positions: list[int]) -> torch.Tensor:
        """(len(positions),) −log p(the char written there) with the whole poem visible: one forward for
        every position, a cheap first look at which characters to re-read masked (core.mend)."""
        ids = self.batch([text], [form])
        cols = torch.tensor(positions, device=ids.device) + BODY_OFFSET
        with one_thread():
            h = self.model.hidden(ids)[0, cols]  # (P, d)
            lp = torch.log_softmax(self.model.mlm_logits(h), -1)
        return -lp[torch.arange(len(positions), device=ids.device), ids[0, cols]].cpu()

    def doubt(self, text: str, form: str, positions: list[int] | None = None) -> list[float]:
        """Per body position: −log p(the char written there | the rest), masked one at a time. High is doubtful.
        Positions the block size cuts off get 0."""
        body = text.translate(_LAYOUT)
        positions = list(range(len(body))) if positions is None else positions
        limit = self.card.model.block_size - BODY_OFFSET
        inside = [p for p in positions if p < limit]
        out = dict.fromkeys(positions, 0.0)
        if inside:
            lp = self.masked_logprobs(text, form, inside)
            for k, p in enumerate(inside):
                out[p] = -float(lp[k, self.vocab.tok_to_id.get(body[p], self.vocab.unk)])
        return [out[p] for p in positions]
