"""The critic's heads: the rating head on a tiny database, the human-likeness head, the feedback judge."""

from __future__ import annotations

import pytest
import torch

from core.testing import tiny_critic, tiny_model_and_tokenizer, tiny_poet
from core.types import PoemRequest
from db.store import Store
from training.critic_heads import (
    MIN_RATINGS_FOR_REWARD,
    LabelledPoem,
    form_of_text,
    reward_for_feedback,
    train_human_head,
    train_rating_head,
)

REAL = ["白日依山尽，黄河入海流。欲穷千里目，更上一层楼。", "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
        "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。", "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。"]


@pytest.fixture(scope="module")
def critic():
    _, tok = tiny_model_and_tokenizer()
    return tiny_critic(tok, heads=False)


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    """A tiny database: 60 poems of the tiny poet, rated 1–5 stars by whether they hold a 平 rhyme char
    the simulated reader likes (so the stars have some signal in the text)."""
    poet = tiny_poet(seed=0)
    path = tmp_path_factory.mktemp("db") / "s.db"
    with Store(f"sqlite:///{path}") as store:
        uid = store.ensure_user("cli", "reader")
        for i in range(60):
            req = PoemRequest(form="五绝", seed=i)
            poem = poet.write(req)[0]
            (pid,) = store.record_poems(uid, req, [poem])
            store.rate(uid, pid, 1 + (sum(map(ord, poem.text)) % 5))
        rows = store.rated_poems()
    poet.close()
    return rows


def test_rating_head_trains_on_a_tiny_database(critic, rated):
    m = train_rating_head(critic, rated)
    assert critic.has_rating and critic.card.heads["rating"]
    assert m["rating_train_n"] + m["rating_valid_n"] == len(rated) and m["rating_valid_n"] > 0
    assert 0 <= m["rating_valid_mae"] <= 4 and "proxy_valid_mae" in m
    pred = critic.rating([r.text for r in rated[:3]], [r.form for r in rated[:3]])
    assert pred.shape == (3,) and torch.isfinite(pred).all()
    again = train_rating_head(critic, rated)
    assert again == m  # deterministic


def test_human_head_separates_what_it_was_shown(critic):
    poet = tiny_poet(seed=1)
    gen = [poet.write(PoemRequest(form="五绝", seed=i))[0].text for i in range(40)]
    poet.close()
    real = [LabelledPoem(REAL[i % 4], "五绝", f"r{i}") for i in range(40)]
    fake = [LabelledPoem(t, "五绝", f"g{i}") for i, t in enumerate(gen)]
    m = train_human_head(critic, real, fake)
    assert critic.has_human and m["human_valid_n"] > 0
    assert m["human_valid_auc"] > 0.9  # random poems against four real ones: easy
    s = critic.score([REAL[0], gen[0]], ["五绝", "五绝"])
    assert float(s[0]) > float(s[1])


def test_feedback_judge_switches_at_the_threshold(critic, rated):
    judge, src = reward_for_feedback(rated[:10], critic)
    assert "human-likeness" in src and isinstance(judge(REAL[0]), float)
    many = (rated * (MIN_RATINGS_FOR_REWARD // len(rated) + 1))[:MIN_RATINGS_FOR_REWARD]
    judge, src = reward_for_feedback(many, critic)
    assert "rating head" in src and 1 <= judge(REAL[0]) <= 6
    assert reward_for_feedback(rated, None) == (None, "no critic")


def test_form_of_text():
    assert form_of_text(REAL[0]) == "五绝"
    assert form_of_text("风急天高猿啸哀，渚清沙白鸟飞回。无边落木萧萧下，不尽长江滚滚来。") == "七绝"
    assert form_of_text("知否，知否，应是绿肥红瘦。") == "词"
