"""`shiren data prepare`: the chinese-poetry tarball → a clean, classified, split Parquet dataset.

Pipeline: read the JSON files straight from the tarball (no extraction) → clean → traditional to
simplified (OpenCC, original kept) → classify form → deduplicate → join popularity → stable split →
Parquet written atomically into `SHIREN_HOME/dataset`.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from core.variants import normalise
from training.clean import classify, clean_body, clean_title

PIPELINE_VERSION = 2  # 2: variant forms normalised (core.variants)
SPLITS = ("train", "valid", "test")
# Per-mille buckets of the stable hash: 98% train, 1% valid, 1% test.
SPLIT_BUCKETS = {"train": range(0, 980), "valid": range(980, 990), "test": range(990, 1000)}


@dataclass
class RawPoem:
    source: str  # file inside the tarball
    source_id: str
    title: str
    author: str
    dynasty: str
    paragraphs: list[str]
    cipai: str = ""  # 词牌 for 词


@dataclass
class PoemRecord:
    id: str
    title: str
    title_trad: str
    author: str
    dynasty: str
    form: str
    cipai: str
    text: str  # simplified, one couplet/sentence per line
    text_trad: str  # as in the source
    source: str
    source_id: str
    popularity: int
    n_chars: int
    split: str


def _member_kind(name: str) -> tuple[str, str] | None:
    """(kind, dynasty) for the tarball members that hold poems; None for the rest."""
    n = name.split("package/dist/", 1)[-1]
    if n.startswith("quantangshi/error/"):
        return None
    if re.fullmatch(r"quantangshi/poet\.tang\.\d+\.json", n):
        return "shi", "唐"
    if re.fullmatch(r"quantangshi/poet\.song\.\d+\.json", n):
        return "shi", "宋"
    if re.fullmatch(r"songci/ci\.song\.\d+\.json", n):
        return "ci", "宋"
    if re.fullmatch(r"wudaishici/huajianji/huajianji-\w+-juan\.json", n):
        return "ci", "五代"
    if n == "wudaishici/nantang/poetrys.json":
        return "ci", "五代"
    if re.fullmatch(r"rank/(poet|ci)/.+\.json", n):
        return "rank", ""
    return None


def read_tarball(path: Path) -> tuple[list[RawPoem], dict[tuple[str, str], int]]:
    """All poems and the popularity table ((author, title-or-词牌) → hits) from the tarball."""
    from tqdm import tqdm

    poems: list[RawPoem] = []
    rank: dict[tuple[str, str], int] = {}
    try:
        tf = tarfile.open(path, "r:gz")
        members = [m for m in tf.getmembers() if m.isfile() and _member_kind(m.name)]
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable chinese-poetry tarball: {e}") from e
    if not any(_member_kind(m.name)[0] != "rank" for m in members):  # type: ignore[index]
        raise ValueError(f"{path} holds no chinese-poetry poem files (wrong tarball?)")
    with tf:
        for m in tqdm(members, desc="read", unit="file"):
            kind, dynasty = _member_kind(m.name)  # type: ignore[misc]
            f = tf.extractfile(m)
            assert f is not None
            try:
                data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"corrupt JSON in {m.name}: {e}") from e
            short = m.name.split("package/dist/", 1)[-1]
            if kind == "rank":
                for r in data:
                    key = (r.get("author", ""), r.get("title") or r.get("rhythmic") or "")
                    hits = sum(int(r.get(k) or 0) for k in ("baidu", "so360", "bing", "bing_en", "google"))
                    rank.setdefault(key, hits)
                continue
            for i, d in enumerate(data):
                if not isinstance(d, dict) or not d.get("paragraphs"):
                    continue
                cipai = (d.get("rhythmic") or "").strip() if kind == "ci" else ""
                title = d.get("title") or cipai
                poems.append(
                    RawPoem(
                        source=short,
                        source_id=str(d.get("id") or f"{short}#{i}"),
                        title=title,
                        author=d.get("author") or "",
                        dynasty=dynasty,
                        paragraphs=[str(p) for p in d["paragraphs"]],
                        cipai=cipai,
                    )
                )
    return poems, rank


def split_of(text: str) -> str:
    """Stable split from a hash of the (simplified) poem text: never changes between runs."""
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 1000
    for name, r in SPLIT_BUCKETS.items():
        if bucket in r:
            return name
    raise AssertionError("unreachable")


def process(raw: list[RawPoem], rank: dict[tuple[str, str], int]) -> tuple[list[PoemRecord], Counter]:
    """Clean, convert, classify and deduplicate; returns records and a counter of drop reasons."""
    from opencc import OpenCC
    from tqdm import tqdm

    t2s = OpenCC("t2s").convert
    drops: Counter = Counter()
    seen: set[str] = set()
    out: list[PoemRecord] = []
    for p in tqdm(raw, desc="clean", unit="poem", mininterval=1.0):
        body_trad = clean_body(p.paragraphs)
        if body_trad is None:
            drops["missing or foreign chars"] += 1
            continue
        body_t2s = t2s(body_trad)
        # One form per character (鴈→雁, 疎→疏): the training text and so the tokenizer. The id, the
        # split and duplicates go by the t2s text, so every poem keeps the split it had before.
        body = normalise(body_t2s)
        if body_t2s in seen:
            drops["duplicate"] += 1
            continue
        seen.add(body_t2s)
        title_trad = clean_title(p.title)
        is_ci = bool(p.cipai)
        cipai = t2s(re.split(r"[\s·・]", p.cipai)[0]) if is_ci else ""
        pop = rank.get((p.author, p.title)) or rank.get((p.author, p.cipai)) or 0
        out.append(
            PoemRecord(
                id=hashlib.sha1(body_t2s.encode("utf-8")).hexdigest()[:16],
                title=normalise(t2s(title_trad)),
                title_trad=title_trad,
                author=t2s(p.author),
                dynasty=p.dynasty,
                form=classify(body, is_ci),
                cipai=cipai,
                text=body,
                text_trad=body_trad,
                source=p.source,
                source_id=p.source_id,
                popularity=pop,
                n_chars=sum(1 for c in body if c not in "，。？！；：、\n"),
                split=split_of(body_t2s),
            )
        )
    return out, drops


def iter_split(records: list[PoemRecord], split: str) -> Iterator[PoemRecord]:
    return (r for r in records if r.split == split)


def write_parquet(records: list[PoemRecord], out_dir: Path) -> dict[str, int]:
    """One Parquet file per split under out_dir; returns row counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = {}
    for split in SPLITS:
        rows = [asdict(r) for r in iter_split(records, split)]
        counts[split] = len(rows)
        table = pa.Table.from_pylist(rows) if rows else pa.table({"id": pa.array([], pa.string())})
        pq.write_table(table, out_dir / f"{split}.parquet", compression="zstd")
    return counts


def load_split(dataset_dir: Path, split: str) -> list[dict]:
    """Rows of one split as dicts (pyarrow, no `datasets` import needed)."""
    import pyarrow.parquet as pq

    path = Path(dataset_dir) / f"{split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"no dataset at {path}; run `shiren data prepare` first")
    return pq.read_table(path).to_pylist()
