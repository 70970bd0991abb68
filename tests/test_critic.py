"""The critic in the poet: choosing among drafts, mending inside the plan, loading and its absence."""

from __future__ import annotations

import logging
import random

import pytest
import torch
from test_generate import assert_guarantees

from core.critic.critic import Critic
from core.infill import RuleReplay, replay
from core.mend import CriticVocabMap, MendConfig, mend
from core.poet import Poet
from core.testing import tiny_critic, tiny_model_and_tokenizer, tiny_poet
from core.types import PoemRequest


@pytest.fixture(scope="module")
def parts():
    model, tok = tiny_model_and_tokenizer(seed=0)
    return model, tok, tiny_critic(tok, seed=0)


@pytest.fixture(scope="module")
def poet(parts):
    model, tok, critic = parts
    p = Poet(model, tok, version="tiny-0", critic=critic)
    yield p
    p.close()


def random_request(rng: random.Random) -> PoemRequest:
    form = rng.choice(["五绝", "七绝", "五律", "七律", "词"])
    kw: dict = {"form": form, "seed": rng.randrange(10**6), "n": rng.choice([1, 1, 2, 3])}
    if form == "词":
        kw["cipai"] = rng.choice(["浣溪沙", "如梦令", "菩萨蛮", "清平乐"])
    roll = rng.random()
    if roll < 0.25:
        kw["acrostic"] = "".join(rng.sample("春夏秋冬山水花月", 2))
    elif roll < 0.5 and form != "词":
        kw["keywords"] = (rng.choice(["明月", "白云", "江南", "故乡"]),)
    return PoemRequest(**kw)


def test_chosen_and_mended_poems_keep_every_guarantee(poet):
    """Property: over random requests, what the critic chooses and mends keeps form, rhyme, tone
    (common readings), the fixed characters and distinctness."""
    rng = random.Random(15)
    mended = 0
    for _ in range(16):
        req = random_request(rng)
        poems = poet.write(req)
        assert len(poems) == req.n and len({p.text for p in poems}) == req.n
        norm = poet.validate(req)
        for p in poems:
            assert_guarantees(norm, p.text)
            assert "critic" in p.scores
            mended += bool(p.scores.get("mended"))
    assert mended, "a random critic finds something to mend somewhere"


def test_critic_draws_more_candidates(poet, parts):
    req = poet.validate(PoemRequest(form="七绝", seed=1))
    assert poet._prepare(req)[3] == poet.candidates * 1 >= 8
    bare = tiny_poet(seed=0)
    assert bare._prepare(req)[3] == 4  # the plain path is unchanged
    bare.close()
    model, tok, _ = parts
    more = Poet(model, tok, version="tiny-0", min_drafts=8)  # as many drafts as a critic gets, ranked by likelihood
    assert more._prepare(req)[3] == 8 and more.critic is None
    two = more.write(PoemRequest(form="七绝", seed=1, n=2))
    assert len({p.text for p in two}) == 2
    more.close()


def test_likelihood_weight_zero_takes_the_first_clean_draft(parts):
    """Ranking without likelihood: the first draft, strict 格律 first, that copies and repeats no line;
    with the weight, the likeliest. Same drafts either way (same seed)."""
    from core.generate import render_text
    from core.poet import line_penalties, rank_score

    model, tok, _ = parts
    req = PoemRequest(form="七绝", seed=3)  # one of its four drafts is not strictly 格律
    flat = Poet(model, tok, version="tiny-0", likelihood_weight=0.0)
    ranked = Poet(model, tok, version="tiny-0")
    norm, job = flat.make_job(req)
    flat.engine.run([job])
    drafts = []  # (text, mean ln P, copies, repeats, strict) in the order the engine wrote them
    for ids, st in flat.engine.results(job):
        if not st.failed:
            text = render_text(job.plan, flat.vi, ids)
            drafts.append((text, st.logprob / max(1, st.n_sampled), *line_penalties(text, "", None),
                           bool(flat.check(text, norm.form).scores().get("tone_strict"))))
    assert len({d[0] for d in drafts}) >= 2

    def best(weight):  # max() keeps the first of equals, as the poet's stable sort does
        return max(drafts, key=lambda d: rank_score(weight * d[1], d[2], d[3], d[4]))[0]

    assert best(0.0) != best(1.0), "a request whose likeliest draft is not the first clean one"
    assert flat.write(req)[0].text == best(0.0)
    assert ranked.write(req)[0].text == best(1.0)
    flat.close()
    ranked.close()


def test_no_polish_returns_the_chosen_draft(parts):
    model, tok, critic = parts
    p = Poet(model, tok, critic=critic, polish=False)
    poems = p.write(PoemRequest(form="七律", seed=4, n=2))
    assert all("mended" not in x.scores for x in poems)
    p.close()


class ScriptedCritic(Critic):
    """The tiny critic's masked LM with a score we choose."""

    def __init__(self, base: Critic, score_fn):
        super().__init__(base.model, base.vocab, base.card)
        self.score_fn = score_fn

    def score(self, texts, forms):
        return torch.tensor([float(self.score_fn(t)) for t in texts])


def _draft(poet, req):
    _, job = poet.make_job(req)
    poet.engine.run([job])
    ids = next(i for i, r in poet.engine.results(job) if not r.failed)
    return job.plan, job.pt, ids


def test_acceptance_rule(parts, poet):
    """An edit is kept only where the score rises: a flat critic changes nothing; one that likes 平
    characters gains at every accepted edit, and the result replays legal."""
    _, _, critic = parts
    plan, pt, ids = _draft(poet, PoemRequest(form="七律", seed=21))
    rules, vmap = RuleReplay(poet.engine.ev), CriticVocabMap(poet.vi, critic)
    flat = ScriptedCritic(critic, lambda t: 0.0)
    assert mend(flat, rules, vmap, plan, pt, ids, "七律", 0.0).edits == []

    pings = {t for t, i in poet.vi.tok_to_id.items() if bool(poet.vi.ping[i]) and not bool(poet.vi.ze[i])}
    def count(t):
        return sum(c in pings for c in t)
    likes = ScriptedCritic(critic, count)
    text0 = "".join(poet.vi.id_to_tok[i] for i in ids)
    m = mend(likes, rules, vmap, plan, pt, ids, "七律", float(count(text0)), MendConfig(rounds=3))
    assert m.score >= count(text0)
    seen = float(count(text0))
    cur = list(ids)
    for e in m.edits:
        cur[e.slot] = poet.vi.char_id(e.new)
        now = float(count("".join(poet.vi.id_to_tok[i] for i in cur)))
        assert now > seen
        seen = now
    assert cur == m.ids
    assert bool(replay(rules, plan, pt, torch.tensor([m.ids]))[0])
    fixed = [i for i, s in enumerate(plan.slots) if s.kind == "punct" or s.fixed]
    assert all(m.ids[i] == ids[i] for i in fixed)


def test_generator_guard_blocks_mends_the_generator_finds_less_likely(parts, poet):
    """The acceptance rule's second half: a variant that lowers the generator's likelihood is not kept,
    whatever the critic says; where the generator is indifferent the mend is the unguarded one."""
    _, _, critic = parts
    plan, pt, ids = _draft(poet, PoemRequest(form="七律", seed=3))
    rules, vmap = RuleReplay(poet.engine.ev), CriticVocabMap(poet.vi, critic)
    pings = {t for t, i in poet.vi.tok_to_id.items() if bool(poet.vi.ping[i]) and not bool(poet.vi.ze[i])}
    likes = ScriptedCritic(critic, lambda t: sum(c in pings for c in t))
    text0 = "".join(poet.vi.id_to_tok[i] for i in ids)
    s0 = float(sum(c in pings for c in text0))
    cfg = MendConfig(rounds=3)
    free = mend(likes, rules, vmap, plan, pt, ids, "七律", s0, cfg)
    assert free.edits, "the 平-loving critic mends this draft"
    calls: list[int] = []

    def stubborn(rows):  # the poem as it stands is the likeliest; every change costs a little
        calls.append(len(rows))
        return torch.tensor([0.0 if r == rows[0] else -0.01 for r in rows])

    assert mend(likes, rules, vmap, plan, pt, ids, "七律", s0, cfg, lm=stubborn).edits == []
    assert calls and all(n >= 2 for n in calls)
    lenient = mend(likes, rules, vmap, plan, pt, ids, "七律", s0, MendConfig(rounds=3, max_lm_drop=0.02), lm=stubborn)
    assert lenient.edits == free.edits  # within the allowed drop, the critic decides as before
    same = mend(likes, rules, vmap, plan, pt, ids, "七律", s0, cfg, lm=lambda rows: torch.zeros(len(rows)))
    assert same.edits == free.edits and same.ids == free.ids


def test_generator_score_is_the_models_own_likelihood(parts, poet):
    """The guard reads the poem as the generator wrote it: the prompt, then one token per slot."""
    model, tok, _ = parts
    req = poet.validate(PoemRequest(form="五绝", seed=3))
    plan, pt, ids = _draft(poet, req)
    prompt = tok(poet.prompt_for(req), add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        lp = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits.float(), -1)[0]
    want = sum(float(lp[len(prompt) - 1 + k, t]) for k, t in enumerate(ids)) / len(ids)
    other = list(ids)
    other[0] = next(i for i in range(len(poet.vi.id_to_tok)) if i != ids[0] and poet.vi.id_to_tok[i])
    got = poet._generator_score(req)([ids, other])
    assert got.shape == (2,)
    assert float(got[0]) == pytest.approx(want, abs=1e-4)
    assert float(got[1]) != pytest.approx(want, abs=1e-6)


def test_mend_keeps_acrostic_heads(parts, poet):
    _, _, critic = parts
    plan, pt, ids = _draft(poet, PoemRequest(form="五律", acrostic="春夏秋冬", seed=2))
    rules, vmap = RuleReplay(poet.engine.ev), CriticVocabMap(poet.vi, critic)
    chunky = ScriptedCritic(critic, lambda t: -sum(ord(c) for c in t) % 97)
    m = mend(chunky, rules, vmap, plan, pt, ids, "五律", -10**6, MendConfig(rounds=3, weakest=8))
    heads = [i for i, s in enumerate(plan.slots) if s.fixed]
    assert [m.ids[i] for i in heads] == [ids[i] for i in heads]


def test_saved_critic_loads_and_scores_the_same(parts, tmp_path):
    _, tok, critic = parts
    critic.save(tmp_path / "critic", dtype=torch.float32, tokenizer_json=critic.tokenizer_json)
    again = Critic.load(tmp_path / "critic")
    texts = ["春风拂柳绿，夜雨润花红。", "白日依山尽，黄河入海流。"]
    assert torch.allclose(critic.score(texts, ["五绝"] * 2), again.score(texts, ["五绝"] * 2), atol=1e-5)


def test_missing_critic_is_one_log_line(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="shiren.critic"):
        assert Critic.load_or_none(tmp_path / "nothing") is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "writing without the critic" in lines[0]


def test_doubts_name_characters_of_the_poem(poet):
    p = poet.write(PoemRequest(form="五绝", seed=3))[0]
    d = poet.doubts(p)
    body = p.text.replace("\n", "")
    assert len(d) == 3 and all(body[i] == c for i, c, _ in d)
    assert d[0][2] >= d[1][2] >= d[2][2]


def test_pll_in_folds_is_the_one_at_a_time_doubt_when_each_fold_holds_one_character(parts):
    """With as many folds as characters, each forward masks one character: the pseudo-log-likelihood is
    then minus the mean of `doubt` (masked one at a time); fewer folds give another, finite number."""
    _, _, critic = parts
    texts = ["床前明月光，疑是地上霜。\n举头望明月，低头思故乡。", "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。"]
    forms = ["五绝", "五绝"]
    one_at_a_time = [-sum(critic.doubt(t, f, [i for i, c in enumerate(t.replace("\n", "")) if c not in "，。"])) / 20
                     for t, f in zip(texts, forms, strict=True)]
    assert critic.pll(texts, forms, folds=20).tolist() == pytest.approx(one_at_a_time, abs=1e-4)
    four = critic.pll(texts, forms, folds=4)
    assert torch.isfinite(four).all() and four.tolist() != pytest.approx(one_at_a_time, abs=1e-4)


def test_card_names_the_score_and_a_saved_choice_survives(parts, tmp_path):
    """`score: "pll"` in config.json makes `score` the pseudo-log-likelihood; it survives a save; an
    unknown score is a load error, not a silent fallback."""
    import json
    import shutil

    from core.critic.critic import CriticLoadError

    _, _, critic = parts
    critic.save(tmp_path / "c", dtype=torch.float32, tokenizer_json=critic.tokenizer_json)
    cfg = json.loads((tmp_path / "c" / "config.json").read_text("utf-8"))
    assert cfg["score"] == "human"
    cfg["score"] = "pll"
    (tmp_path / "c" / "config.json").write_text(json.dumps(cfg), "utf-8")
    by_pll = Critic.load(tmp_path / "c")
    texts, forms = ["白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。"], ["五绝"]
    assert by_pll.score(texts, forms).tolist() == pytest.approx(by_pll.pll(texts, forms).tolist(), abs=1e-6)
    by_pll.save(tmp_path / "again")
    assert Critic.load(tmp_path / "again").card.score == "pll"
    shutil.copytree(tmp_path / "c", tmp_path / "bad")
    cfg["score"] = "vibes"
    (tmp_path / "bad" / "config.json").write_text(json.dumps(cfg), "utf-8")
    with pytest.raises(CriticLoadError, match="vibes"):
        Critic.load(tmp_path / "bad")
