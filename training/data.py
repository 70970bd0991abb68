"""Token streams for pretraining: every poem as header + body + <eos>, packed end to end."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np

from core.prompt import training_text
from training.corpus import load_split

# Share of poems whose title is left out, so the model also writes without one.
TITLE_DROPOUT = 0.1


def pretrain_texts(rows: list[dict], seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for r in rows:
        title = r["title"] if rng.random() >= TITLE_DROPOUT else ""
        if r["form"] == "词" and title == r["cipai"]:
            title = ""  # 词 whose title is just the 词牌 name: the 牌 field says it already
        out.append(training_text(r["form"], r["text"], title=title[:30], cipai=r["cipai"]))
    return out


def encode_stream(texts: list[str], tokenizer) -> np.ndarray:
    """All texts tokenized and concatenated into one uint16/uint32 array."""
    from tqdm import tqdm

    parts = []
    for i in tqdm(range(0, len(texts), 4096), desc="tokenize", unit="chunk"):
        enc = tokenizer(texts[i : i + 4096], add_special_tokens=False)["input_ids"]
        parts.extend(enc)
    dtype = np.uint16 if len(tokenizer) < 65535 else np.uint32
    return np.fromiter((t for ids in parts for t in ids), dtype=dtype)


def token_stream(dataset_dir: Path, split: str, tokenizer, seed: int = 0) -> np.ndarray:
    """The packed token stream of a split, cached next to the dataset (keyed by the tokenizer)."""
    vocab_key = hashlib.sha1("".join(tokenizer.convert_ids_to_tokens(range(len(tokenizer)))).encode()).hexdigest()[:10]
    cache = Path(dataset_dir) / f"tokens_{split}_{vocab_key}_s{seed}.npy"
    if cache.exists():
        return np.load(cache, allow_pickle=False)
    stream = encode_stream(pretrain_texts(load_split(dataset_dir, split), seed), tokenizer)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, stream, allow_pickle=False)
    tmp.replace(cache)
    return stream


class BlockSampler:
    """Deterministic batches of packed blocks: the same (seed, step) always gives the same batch,
    so a resumed run continues exactly where it stopped. Each DDP rank takes its own slice."""

    def __init__(self, stream: np.ndarray, block_size: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.block = block_size + 1  # inputs and next-token targets
        self.n_blocks = len(stream) // self.block
        if self.n_blocks < batch_size * world:
            raise ValueError(f"stream of {len(stream)} tokens is too short for batches of {batch_size}×{self.block}")
        self.blocks = stream[: self.n_blocks * self.block].reshape(self.n_blocks, self.block)
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.per_epoch = self.n_blocks // (batch_size * world)
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def batch(self, step: int) -> np.ndarray:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng(self.seed + epoch).permutation(self.n_blocks)
            self._perm_epoch = epoch
        assert self._perm is not None
        start = (i * self.world + self.rank) * self.batch_size
        return self.blocks[self._perm[start : start + self.batch_size]].astype(np.int64)
