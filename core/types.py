"""The core's public vocabulary: what a caller asks for and what it gets back.

The bot, the terminal app and the CLI depend on these types only (plus `core.poet.Poet`),
so they stay small and stable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The forms Shiren writes. 词 needs a 词牌 (cipai).
FORMS: tuple[str, ...] = ("五绝", "七绝", "五律", "七律", "词")

MAX_TITLE_CHARS = 30
MAX_KEYWORDS = 4
MAX_CANDIDATES = 64


class ShirenError(Exception):
    """Base of every error whose message is meant for the user (no traceback)."""


class RequestError(ShirenError, ValueError):
    """The request is impossible or malformed; the message says why, in plain words."""


class BusyError(ShirenError, RuntimeError):
    """The poet is at capacity; try again in a moment."""


# Sampling defaults. Blind readings of the shipped poet at 0.4–0.9 (docs/decode-sweep.md): readers scored
# fluency and coherence higher as the temperature fell to 0.6 (coherence 2.27 at 0.8, 2.6 at 0.6) and
# no higher below it, where lines began to repeat between seeds.
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95


@dataclass(frozen=True)
class PoemRequest:
    """One request to the poet. Validated and normalised by `core.requests.normalize_request`."""

    form: str
    title: str = ""
    keywords: tuple[str, ...] = ()
    acrostic: str = ""
    first_line: str = ""
    cipai: str = ""
    n: int = 1
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keywords"] = list(self.keywords)
        return d


@dataclass
class Poem:
    """A generated poem. `text` holds the lines separated by newlines."""

    text: str
    form: str
    title: str = ""
    cipai: str = ""
    # Mean log-likelihood per char under the model (higher is better).
    logprob: float = 0.0
    # 格律 summary from the engine: {"format": bool, "rhyme": bool, "tone_relaxed": bool, ...}
    scores: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.text.split("\n") if ln]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
