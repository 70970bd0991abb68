"""Orchestrates `shiren data prepare`: verified tarball → dataset dir (Parquet splits + tokenizer + manifest)."""

from __future__ import annotations

import errno
import json
import time
from collections import Counter
from pathlib import Path

from core.atomic import atomic_dir
from core.types import ShirenError
from training import corpus, tokenizer
from training.npm_source import VERSION, fetch_tarball, local_tarball

MANIFEST = "manifest.json"


class PrepareError(ShirenError):
    """Data preparation failed for a reason the user can act on."""


def is_up_to_date(out_dir: Path, integrity: str) -> bool:
    m = out_dir / MANIFEST
    if not m.exists():
        return False
    try:
        man = json.loads(m.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return man.get("integrity") == integrity and man.get("pipeline_version") == corpus.PIPELINE_VERSION


def build(tarball: Path, out_dir: Path, integrity: str, *, version: str = VERSION) -> dict:
    """Build the whole dataset into a temp dir and swap it in; returns the manifest."""
    t0 = time.time()
    try:
        raw, rank = corpus.read_tarball(tarball)
    except ValueError as e:
        raise PrepareError(str(e)) from e
    records, drops = corpus.process(raw, rank)
    if not records:
        raise PrepareError(f"{tarball} yielded no poems")
    train_chars = tokenizer.char_counts(r.text for r in corpus.iter_split(records, "train"))
    train_chars.update(tokenizer.char_counts(r.title for r in corpus.iter_split(records, "train")))
    valid_chars = tokenizer.char_counts(r.text for r in corpus.iter_split(records, "valid"))
    chars, min_freq, unk_rate = tokenizer.choose_vocab(train_chars, valid_chars)
    try:
        with atomic_dir(out_dir) as tmp:
            counts = corpus.write_parquet(records, tmp)
            tok = tokenizer.build_tokenizer(chars)
            tokenizer.save_tokenizer(tok, tmp / "tokenizer")
            manifest = summary(records, drops, counts)
            manifest.update(
                package=f"chinese-poetry@{version}",
                integrity=integrity,
                pipeline_version=corpus.PIPELINE_VERSION,
                vocab_size=len(tok),
                vocab_min_freq=min_freq,
                valid_unk_rate=unk_rate,
                seconds=round(time.time() - t0, 1),
            )
            (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise PrepareError(f"disk full while writing {out_dir}; free some space and rerun") from e
        raise PrepareError(f"cannot write {out_dir}: {e.strerror or e}") from e
    return manifest


def summary(records: list[corpus.PoemRecord], drops: Counter, counts: dict[str, int]) -> dict:
    per_form: dict[str, dict[str, int]] = {}
    chars: dict[str, int] = {s: 0 for s in corpus.SPLITS}
    distinct: set[str] = set()
    for r in records:
        per_form.setdefault(r.form, {s: 0 for s in corpus.SPLITS})[r.split] += 1
        chars[r.split] += r.n_chars
        distinct.update(r.text)
    distinct -= set("，。？！；：、\n")
    cipai = Counter(r.cipai for r in records if r.form == "词")
    return {
        "poems": counts,
        "per_form": per_form,
        "chars": chars,
        "distinct_chars": len(distinct),
        "dropped": dict(drops),
        "distinct_cipai": len(cipai),
        "top_cipai": cipai.most_common(10),
    }


def prepare(out_dir: Path, cache: Path, from_tarball: Path | None = None, force: bool = False) -> tuple[dict, bool]:
    """(manifest, rebuilt?). Verifies the source first; a matching existing dataset is left alone."""
    parent = Path(out_dir).parent
    if not parent.is_dir():
        raise PrepareError(f"data dir {parent} does not exist; create it or point SHIREN_HOME at an existing folder")
    if from_tarball is not None:
        tarball, integrity = local_tarball(from_tarball)
    else:
        cache.mkdir(parents=True, exist_ok=True)
        tarball, integrity = fetch_tarball(cache)
    if not force and is_up_to_date(out_dir, integrity):
        return json.loads((out_dir / MANIFEST).read_text("utf-8")), False
    return build(tarball, out_dir, integrity), True
