"""A tiny, randomly initialised poet for tests and demos: real tokenizer format, real constraints.

Its poems are nonsense, but every guarantee of the decoder (form, rhyme, tone, acrostic, keywords)
still holds, so the bot, the app and the tests exercise the real code paths in milliseconds.
"""

from __future__ import annotations

from importlib import resources

from core.poet import Poet


def common_chars(n: int = 3000) -> list[str]:
    """The `n` most frequent characters of the corpus (shipped with the package)."""
    text = resources.files("core").joinpath("data/common_chars.txt").read_text("utf-8").strip()
    return list(text[:n])


def tiny_model_and_tokenizer(n_chars: int = 3000, seed: int = 0, n_embd: int = 32, n_layer: int = 1,
                             arch: str = "llama"):
    import torch

    from training.model import GPTConfig, build_model
    from training.tokenizer import build_tokenizer

    tok = build_tokenizer(common_chars(n_chars) + list("，。？！；：、"))
    torch.manual_seed(seed)
    cfg = GPTConfig(arch=arch, vocab_size=len(tok), block_size=256, n_layer=n_layer, n_head=2, n_embd=n_embd)
    return build_model(cfg).eval(), tok


def tiny_poet(seed: int = 0, **kw) -> Poet:
    model, tok = tiny_model_and_tokenizer(seed=seed)
    return Poet(model, tok, version=f"tiny-{seed}", **kw)


def tiny_critic(tokenizer, seed: int = 0, n_embd: int = 32, n_layer: int = 1, heads: bool = True):
    """A randomly initialised critic over `tokenizer`'s characters (its scores are arbitrary but fixed)."""
    import json

    import torch

    from core.critic.critic import CharVocab, Critic, CriticCard
    from core.critic.model import CriticConfig, CriticModel

    tj = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = CharVocab(tj)
    torch.manual_seed(seed)
    cfg = CriticConfig(vocab_size=vocab.size + 1, pad_id=vocab.pad, n_layer=n_layer, n_head=2, n_embd=n_embd)
    card = CriticCard(cfg, heads={"human": heads, "rating": heads})
    critic = Critic(CriticModel(cfg), vocab, card)
    critic.tokenizer_json = tj  # for save()
    return critic


def tiny_poet_with_critic(seed: int = 0, **kw) -> Poet:
    model, tok = tiny_model_and_tokenizer(seed=seed)
    return Poet(model, tok, version=f"tiny-{seed}", critic=tiny_critic(tok, seed=seed), **kw)
