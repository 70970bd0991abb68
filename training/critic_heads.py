"""The critic's poem-level heads, fitted on the frozen encoder's pooled features (cheap on this CPU,
deterministic, and each measured on held-out data):

- *human-likeness*: real poems (label 1) against the generator's poems for the same kinds of request
  (label 0), L2 logistic regression; held-out accuracy and ROC-AUC. Regenerate the samples whenever
  the generator changes.
- *ratings* (a reward model): users' stars, ridge regression on the centred stars; held-out MAE and
  Spearman, beside the bag-of-characters ridge proxy the feedback rounds used before.

`reward_for_feedback` gives a feedback round its judge: the rating head once enough ratings exist,
else the human-likeness head, else (no critic) the old proxy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.critic.critic import Critic
from training.metrics import roc_auc

# Below this many ratings the stars are too few to fit a reward model on; the human-likeness head judges.
MIN_RATINGS_FOR_REWARD = 50
HELD_OUT_SHARE = 0.2
HUMAN_L2 = 1e-3
RATING_L2 = 1.0

_PUNCT = re.compile(r"[，。？！；、：]")
_JINTI = {(5, 4): "五绝", (7, 4): "七绝", (5, 8): "五律", (7, 8): "七律"}


def form_of_text(text: str) -> str:
    """The form a poem's shape says (4 or 8 equal clauses of 5 or 7), else 词: for judges given text only."""
    cl = [c for c in _PUNCT.split("".join(text.split())) if c]
    lengths = {len(c) for c in cl}
    return _JINTI.get((lengths.pop(), len(cl)), "词") if len(lengths) == 1 else "词"


def held_out(key: str) -> bool:
    """A stable 20% of items (by a hash of their key), never trained on."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


@torch.inference_mode()
def pooled_features(critic: Critic, texts: list[str], forms: list[str], batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(texts), batch):
        ids = critic.batch(texts[i : i + batch], forms[i : i + batch])
        out.append(critic.model.pooled(critic.model.hidden(ids), ids).cpu())  # the heads are fitted on the CPU
    return torch.cat(out) if out else torch.zeros(0, critic.card.model.n_embd)


def _logistic(X: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, float]:
    """Weights and bias of an L2 logistic regression (L-BFGS, deterministic)."""
    w = torch.zeros(X.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), float(b.detach())


def _ridge(X: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    X, y = X.double(), y.double()
    return torch.linalg.solve(X.T @ X + l2 * torch.eye(X.shape[1], dtype=X.dtype), X.T @ y).float()


@dataclass(frozen=True)
class LabelledPoem:
    text: str
    form: str
    key: str  # what decides held-out membership (a real poem and its generated twin share one)


def train_human_head(critic: Critic, real: list[LabelledPoem], generated: list[LabelledPoem]) -> dict[str, float]:
    """Fit the human-likeness head in place; returns held-out accuracy and AUC (and the counts)."""
    items = [(p, 1.0) for p in real] + [(p, 0.0) for p in generated]
    X = pooled_features(critic, [p.text for p, _ in items], [p.form for p, _ in items])
    y = torch.tensor([lab for _, lab in items])
    test = torch.tensor([held_out(p.key) for p, _ in items])
    mu, sd = X[~test].mean(0), X[~test].std(0).clamp_min(1e-6)
    w, b = _logistic((X[~test] - mu) / sd, y[~test], HUMAN_L2)
    # Fold the standardisation into the head: logit = ((x − μ)/σ)·w + b.
    with torch.no_grad():
        critic.model.human.weight.copy_((w / sd)[None])
        critic.model.human.bias.fill_(b - float((mu / sd) @ w))
    critic.card.heads["human"] = critic.has_human = True
    logits = critic.model.human(X[test].to(critic.device)).squeeze(-1).detach().cpu()
    acc = float(((logits > 0).float() == y[test]).float().mean())
    auc = roc_auc(y[test].int().tolist(), logits.tolist())
    m = {"human_valid_acc": round(acc, 4), "human_valid_auc": round(auc, 4), "human_train_n": int((~test).sum()),
         "human_valid_n": int(test.sum())}
    critic.card.metrics.update(m)
    return m


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for k, i in enumerate(order):
            r[i] = float(k)
        return torch.tensor(r)

    if len(a) < 2:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def train_rating_head(critic: Critic, rated: list) -> dict[str, float]:
    """Fit the rating head in place on `store.rated_poems()` rows; held-out MAE and Spearman, with the
    bag-of-characters proxy fitted on the same training ratings for comparison."""
    from training.preference import StarsProxy

    if not rated:
        raise ValueError("no ratings to train the rating head on")
    test = [held_out(f"rating-{r.poem_id}") for r in rated]
    if all(test) or not any(test):  # tiny databases: still hold something out
        test = [i % 5 == 4 for i in range(len(rated))]
    X = pooled_features(critic, [r.text for r in rated], [r.form for r in rated])
    y = torch.tensor([float(r.stars) for r in rated])
    tr, te = ~torch.tensor(test), torch.tensor(test)
    mean = float(y[tr].mean())
    mu = X[tr].mean(0)
    w = _ridge(X[tr] - mu, y[tr] - mean, RATING_L2)
    with torch.no_grad():
        critic.model.rating.weight.copy_(w[None])
        critic.model.rating.bias.fill_(-float(mu @ w))
    critic.card.heads["rating"] = critic.has_rating = True
    pred = (critic.model.rating(X[te].to(critic.device)).squeeze(-1).detach().cpu() + mean).clamp(1, 5)
    proxy = StarsProxy.fit([r for r, t in zip(rated, test, strict=True) if not t])
    proxy_pred = torch.tensor([proxy.predict(r.text) for r, t in zip(rated, test, strict=True) if t])
    m = {"rating_mean": round(mean, 4), "rating_valid_mae": round(float((pred - y[te]).abs().mean()), 4),
         "rating_valid_spearman": round(spearman(pred.tolist(), y[te].tolist()), 4),
         "proxy_valid_mae": round(float((proxy_pred - y[te]).abs().mean()), 4),
         "proxy_valid_spearman": round(spearman(proxy_pred.tolist(), y[te].tolist()), 4),
         "rating_train_n": int(tr.sum()), "rating_valid_n": int(te.sum())}
    critic.card.metrics.update(m)
    return m


class CriticJudge:
    """A feedback round's judge from the critic: text → a score (higher is better)."""

    def __init__(self, critic: Critic, head: str):
        self.critic, self.head = critic, head
        self.__name__ = f"critic {head} head"

    def __call__(self, text: str) -> float:
        form = form_of_text(text)
        if self.head == "rating":
            return float(self.critic.rating([text], [form])[0]) + float(self.critic.card.metrics.get("rating_mean", 3.0))
        return float(self.critic.score([text], [form])[0])


def reward_for_feedback(rated: list, critic: Critic | None) -> tuple[Callable[[str], float] | None, str]:
    """The judge a feedback round mines pairs with and gates promotion on, and what it is:
    the rating head retrained on these ratings once there are MIN_RATINGS_FOR_REWARD of them, else
    the human-likeness head; None without a critic (the round falls back to the ridge proxy)."""
    if critic is None:
        return None, "no critic"
    if len(rated) >= MIN_RATINGS_FOR_REWARD:
        m = train_rating_head(critic, rated)
        return CriticJudge(critic, "rating"), (f"critic rating head on {len(rated)} ratings "
                                               f"(held-out MAE {m['rating_valid_mae']:.2f})")
    if critic.has_human:
        return CriticJudge(critic, "human"), (f"critic human-likeness head ({len(rated)} ratings < "
                                              f"{MIN_RATINGS_FOR_REWARD} for a reward model)")
    return None, "critic without trained heads"
