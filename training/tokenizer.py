"""The character-level tokenizer: one token per character, plus Shiren's control tokens.

Built with HF `tokenizers` (a WordLevel model over single characters), saved as `tokenizer.json`
and loadable with `AutoTokenizer.from_pretrained`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from core.prompt import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

# Frequencies tried, highest first; the first whose valid-split unknown rate is below the target wins.
MIN_FREQ_CANDIDATES = (20, 10, 5, 3, 2, 1)
TARGET_UNK_RATE = 0.001


def char_counts(texts: Iterable[str]) -> Counter:
    c: Counter = Counter()
    for t in texts:
        c.update(t)
    c.pop("\n", None)
    return c


def choose_vocab(train: Counter, valid: Counter) -> tuple[list[str], int, float]:
    """(chars, min_freq, valid unk rate): the smallest vocabulary that keeps unknowns under target."""
    total = sum(valid.values()) or 1
    best = None
    for mf in MIN_FREQ_CANDIDATES:
        chars = sorted((ch for ch, n in train.items() if n >= mf), key=lambda ch: (-train[ch], ch))
        vocab = set(chars)
        unk = sum(n for ch, n in valid.items() if ch not in vocab) / total
        best = (chars, mf, unk)
        if unk < TARGET_UNK_RATE:
            break
    assert best is not None
    return best


def build_tokenizer(chars: list[str]):
    """A PreTrainedTokenizerFast with the special tokens first, then one id per character."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every character is its own token; control tokens are matched whole before this split.
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (BOS, EOS, PAD, UNK)],
        clean_up_tokenization_spaces=False,
    )


def save_tokenizer(tok, out_dir: Path) -> None:
    tok.save_pretrained(str(out_dir))


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
