"""Shared fixtures: an isolated SHIREN_HOME, and a miniature chinese-poetry tarball of real poems."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config):
    """Tiny models run fastest on one thread; more only oversubscribe a 2-core CI box."""
    import os
    import tempfile

    import torch

    torch.set_num_threads(1)
    # The decode kernel is compiled once per test session into a private dir (core.fastc).
    os.environ.setdefault("SHIREN_KERNEL_DIR", tempfile.mkdtemp(prefix="shiren-kernels-"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads or writes the developer's own data dir or database."""
    home = tmp_path_factory.mktemp("shiren_home")
    monkeypatch.setenv("SHIREN_HOME", str(home))
    monkeypatch.delenv("SHIREN_DATABASE_URL", raising=False)
    monkeypatch.delenv("SHIREN_MODEL_DIR", raising=False)
    monkeypatch.delenv("SHIREN_AMATEUR_DIR", raising=False)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    # The suite tests the CPU path (the C kernel, bitwise the reference path's poems) on any machine,
    # a GPU one too; the GPU's cases name their device (tests/test_device.py).
    monkeypatch.setenv("SHIREN_DEVICE", "cpu")
    return home


def make_tarball(path: Path, files: dict[str, object]) -> Path:
    """A .tgz laid out like the npm package (package/dist/...)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, content in files.items():
            data = content if isinstance(content, bytes) else json.dumps(content, ensure_ascii=False).encode()
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def fixture_json(name: str):
    return json.loads((FIXTURES / "corpus" / name).read_text("utf-8"))


@pytest.fixture
def mini_tarball(tmp_path) -> Path:
    return make_tarball(
        tmp_path / "chinese-poetry-mini.tgz",
        {
            "quantangshi/poet.tang.0.json": fixture_json("poet.tang.0.json"),
            "songci/ci.song.0.json": fixture_json("ci.song.0.json"),
            "rank/poet/poet.tang.rank.0.json": fixture_json("poet.tang.rank.0.json"),
            "quantangshi/error/poet.tang.0.json": [{"author": "x", "title": "y", "paragraphs": ["壞壞壞壞壞。"]}],
        },
    )
