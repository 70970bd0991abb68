"""A feedback round end to end on a tiny model and a real SQLite store: rate → DPO → gates → promotion,
a gate failure, a crash and a killed process (nothing visible changes), and the simulated rater's proof."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from db.store import Store
from training.feedback import FeedbackConfig, run_feedback_round
from training.simulated_rater import (
    TRAIN_TITLES,
    WATER,
    CharSetRater,
    make_tiny_setup,
    requests_for,
    run_simulation,
    simulate_ratings,
)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
FAST = FeedbackConfig(lr=2e-2, beta=0.5, max_steps=6, epochs=1, batch_size=8, n_fresh=2)
GATES = requests_for(("春晓", "秋夜"), 4, seed=8000)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A tiny base model, a starting adapter registered as active, and 10 rated requests (4 poems each)."""
    from core.poet import Poet

    root = tmp_path_factory.mktemp("fb_template")
    base_dir, adapter = make_tiny_setup(root, n_embd=64, cluster=WATER, cluster_scale=3.0)
    db = root / "shiren.db"
    with Store(f"sqlite:///{db}") as store:
        store.add_adapter(adapter.name, str(adapter), None, {}, status="active")
        poet = Poet.load(base_dir, adapter=adapter)
        simulate_ratings(store, poet, CharSetRater(), requests_for(TRAIN_TITLES, 10, seed=1, poems_per_request=4),
                         adapter_version=adapter.name)
        poet.close()
    return base_dir, adapter, db


@pytest.fixture
def env(template, tmp_path):
    base_dir, adapter, db = template
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(db, home / "shiren.db")
    store = Store(f"sqlite:///{home / 'shiren.db'}")
    yield store, base_dir, adapter, home
    store.close()


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_round_end_to_end(env):
    store, base_dir, adapter, home = env
    before = digest(adapter)
    lines = []
    r = run_feedback_round(store, base_dir, min_new_ratings=5, eval_requests=GATES, config=FAST, home=home,
                           progress=lambda f, line: lines.append((f, line)))
    assert r.outcome in ("promoted", "candidate"), r.message
    assert r.data["pairs"] > 0 and r.data["new_ratings"] == 40 and r.parent == adapter.name
    folder = home / "adapters" / r.adapter
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "training.json"} <= set(os.listdir(folder))
    rec = {a.name: a for a in store.list_adapters()}[r.adapter]
    assert rec.parent == adapter.name and rec.path == str(folder)
    assert set(rec.metrics) >= {"active", "candidate", "train", "preference_metric"}
    run = store.list_runs()[0]
    assert run.kind == "feedback" and run.outcome == r.outcome and run.adapter == r.adapter
    assert run.metrics["candidate"]["format"] == 1.0 and "reasons" in run.metrics
    expected_active = r.adapter if r.outcome == "promoted" else adapter.name
    assert store.active_adapter().name == expected_active and rec.status == ("active" if r.outcome == "promoted"
                                                                              else "candidate")
    assert [f for f, _ in lines] == sorted(f for f, _ in lines) and lines[-1][0] == 1.0
    assert any("step" in line for _, line in lines)
    assert digest(adapter) == before  # the parent adapter is only read
    # Nothing new since: the next scheduled round is skipped, and records no run.
    again = run_feedback_round(store, base_dir, min_new_ratings=5, eval_requests=GATES, config=FAST, home=home)
    assert again.outcome == "skipped" and "0 new ratings" in again.message
    assert len(store.list_runs()) == 1


def test_failing_gate_keeps_a_candidate_with_reasons(env):
    store, base_dir, adapter, home = env
    r = run_feedback_round(store, base_dir, force=True, eval_requests=GATES, config=FAST, home=home,
                           preference=lambda text: 0.0)  # a judge nothing can please
    assert r.outcome == "candidate" and any("preference did not improve" in x for x in r.reasons)
    assert store.active_adapter().name == adapter.name
    assert {a.name: a.status for a in store.list_adapters()}[r.adapter] == "candidate"
    run = store.list_runs()[0]
    assert run.outcome == "candidate" and "preference did not improve" in run.error


def test_crash_mid_training_changes_nothing_visible(env):
    store, base_dir, adapter, home = env
    before, adapters_before = digest(adapter), store.list_adapters()

    def progress(fraction, line):
        if line.startswith("step 2/"):
            raise RuntimeError("simulated crash inside training")

    r = run_feedback_round(store, base_dir, force=True, eval_requests=GATES, config=FAST, home=home,
                           progress=progress)
    assert r.outcome == "failed" and "simulated crash" in r.message
    assert store.list_adapters() == adapters_before and store.active_adapter().name == adapter.name
    assert digest(adapter) == before
    assert not (home / "adapters").exists() or list((home / "adapters").iterdir()) == []
    run = store.list_runs()[0]
    assert run.outcome == "failed" and "simulated crash" in run.error


KILL_SCRIPT = """
import os, sys, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from db.store import Store
from training.feedback import FeedbackConfig, run_feedback_round
from training.simulated_rater import requests_for
home, base = Path(sys.argv[1]), Path(sys.argv[2])
def progress(f, line):
    if line.startswith("step 2/"):
        (home / "in-training").write_text("x")
        time.sleep(60)
with Store(f"sqlite:///{home / 'shiren.db'}") as store:
    run_feedback_round(store, base, force=True, eval_requests=requests_for(("春晓",), 2, seed=1),
                       config=FeedbackConfig(lr=1e-2, max_steps=4, epochs=1, n_fresh=0), home=home, progress=progress)
"""


def test_killed_round_changes_nothing_visible_and_is_cleaned_up(env):
    store, base_dir, adapter, home = env
    before, adapters_before = digest(adapter), store.list_adapters()
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(home), str(base_dir)], cwd=ROOT,
                            env={**os.environ, "SHIREN_HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not (home / "in-training").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the round never reached training"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Killed mid-training: the active adapter, its files and the adapter list are as they were.
    assert store.list_adapters() == adapters_before and store.active_adapter().name == adapter.name
    assert digest(adapter) == before
    assert store.list_runs()[0].outcome == "running"  # what a kill leaves: a dangling row
    # The next round is not blocked (the OS dropped the lock) and marks the dangling run failed.
    r = run_feedback_round(store, base_dir, min_new_ratings=10_000, home=home)
    assert r.outcome == "skipped"
    runs = store.list_runs()
    assert runs[0].outcome == "failed" and "interrupted" in runs[0].error
    assert not any(p.name.startswith(".") for p in (home / "adapters").glob("*")) if (home / "adapters").exists() \
        else True


def test_simulated_rater_liked_property_rises(template, tmp_path):
    """The proof in small: water-loving users rate; after one round, held-out requests get clearly more water
    imagery (the paired 95% CI excludes 0) while format, rhyme and tone stay at 100%."""
    base_dir, adapter, _ = template
    home = tmp_path / "sim"
    home.mkdir()
    with Store(f"sqlite:///{home / 'shiren.db'}") as store:
        out = run_simulation(store, base_dir, adapter, train_requests=24, poems_per_request=4, heldout_requests=24,
                             gate_requests=12, config=FeedbackConfig(lr=1e-2, beta=0.5, max_steps=40, epochs=2),
                             log=lambda line: None, home=home)
        assert out["round"]["outcome"] == "promoted", out["round"]["message"]
        assert store.active_adapter().name == out["round"]["adapter"]
        poems = store.rated_poems()
        assert poems and all(p.adapter_version == adapter.name for p in poems)
        assert all(p.model_version.endswith("+" + adapter.name) for p in poems)
    cmp = out["compare"]
    before, after = cmp["before"], cmp["after"]
    assert cmp["diff"][1] > 0.5, out["table"]  # the paired difference's lower bound
    assert after["liked"][1] > before["liked"][2]  # the intervals do not even overlap
    for key in ("format", "rhyme", "tone"):
        assert before[key] == after[key] == 1.0
    assert after["repeat"] <= before["repeat"] and after["failed"] == 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: a feedback round on the GPU is tested "
                                                          "on a GPU machine (scripts/gpu_check.sh)")
def test_round_on_cuda(env, monkeypatch):
    """The same round with the GPU picked (SHIREN_DEVICE=cuda): the poets decode there, DPO trains there
    (use_cpu off), and the candidate keeps every guarantee (its gates)."""
    store, base_dir, adapter, home = env
    monkeypatch.setenv("SHIREN_DEVICE", "cuda")
    r = run_feedback_round(store, base_dir, min_new_ratings=5, eval_requests=GATES, config=FAST, home=home)
    assert r.outcome in ("promoted", "candidate"), r.message
    assert store.list_runs()[0].metrics["candidate"]["format"] == 1.0
    assert (home / "adapters" / r.adapter / "adapter_model.safetensors").exists()
