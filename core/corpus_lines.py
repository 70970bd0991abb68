"""A compact set of every clause (句) in the corpus, to keep generated lines from copying famous ones.

Stored as sorted uint32 CRC-32 hashes (about 4 bytes a clause; false-positive rate ~ n/2^32). Clauses
are hashed in their normalised form (core.variants: one form per character), as the training text is.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from core.variants import normalise

FILE_NAME = "corpus_lines.npy"


def line_hash(clause: str) -> int:
    return zlib.crc32(clause.encode("utf-8"))


class CorpusLines:
    def __init__(self, hashes: np.ndarray):
        hashes = np.asarray(hashes)
        if hashes.dtype == np.uint32 and (len(hashes) < 2 or bool(np.all(hashes[1:] > hashes[:-1]))):
            self.hashes = hashes  # already a sorted set (as saved): np.unique would cost ~3 s at start-up
        else:
            self.hashes = np.unique(hashes.astype(np.uint32))

    @classmethod
    def from_clauses(cls, clauses: Iterable[str]) -> CorpusLines:
        return cls(np.fromiter((line_hash(normalise(c)) for c in clauses), dtype=np.uint32))

    @classmethod
    def load(cls, path: Path) -> CorpusLines | None:
        if not Path(path).exists():
            return None
        # Memory-mapped: the 11 MB set stays in the page cache, shared by every process, not in each RSS.
        return cls(np.load(path, allow_pickle=False, mmap_mode="r"))

    def save(self, path: Path) -> None:
        tmp = Path(path).with_suffix(".tmp.npy")
        np.save(tmp, self.hashes, allow_pickle=False)
        tmp.replace(path)

    def __contains__(self, clause: str) -> bool:
        h = np.uint32(line_hash(normalise(clause)))
        i = int(np.searchsorted(self.hashes, h))
        return i < len(self.hashes) and self.hashes[i] == h

    def __len__(self) -> int:
        return len(self.hashes)
