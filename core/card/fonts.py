"""Finding the 楷 (kai) face for poem cards: at run time, from the fonts installed on this machine.

Nothing is downloaded. The set-up installs Debian's `fonts-lxgw-wenkai` (霞鹜文楷); any other 楷 font
that fontconfig or the platform's font folders know works too (AR PL UKai, 楷体, STKaiti …), and
`SHIREN_CARD_FONT=/path/to/font.ttf` picks one explicitly. Missing glyphs (a rare traditional
character) are taken from the other 楷 fonts found, when there are any.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from core.types import ShirenError

FONT_ENV = "SHIREN_CARD_FONT"
# Preferred families, best first (names as fontconfig and the fonts' name tables spell them).
KAI_FAMILIES: tuple[str, ...] = (
    "LXGW WenKai", "霞鹜文楷", "LXGW WenKai Mono", "AR PL UKai CN", "AR PL UKai TW", "AR PL UKai HK",
    "AR PL KaitiM GB", "AR PL KaitiM Big5", "TW-Kai", "cwTeXKai", "Kaiti SC", "STKaiti", "KaiTi", "楷体",
    "BiauKai", "DFKai-SB",
)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
REGULAR_STYLES = ("Regular", "Book", "Medium", "Normal")
INSTALL_HINT = ("install a 楷 font: `apt-get install fonts-lxgw-wenkai` (Debian/Ubuntu; `bash scripts/setup.sh` "
                f"does it), or set {FONT_ENV}=/path/to/a-kai-font.ttf")


class FontMissingError(ShirenError):
    """No usable 楷 font: the message says how to install one."""


@dataclass(frozen=True)
class FontFace:
    path: Path
    family: str
    index: int = 0  # the face inside a .ttc collection


def _rank(family: str) -> int:
    fam = family.lower()
    for i, name in enumerate(KAI_FAMILIES):
        if fam == name.lower():
            return i
    return len(KAI_FAMILIES)


def _from_fontconfig() -> list[FontFace]:
    """Kai faces fontconfig knows (`fc-list`), when fontconfig is installed."""
    exe = shutil.which("fc-list")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--format", "%{file}\t%{index}\t%{family}\t%{style}\n", ":lang=zh"],
                             capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    faces = []
    for row in out.splitlines():
        parts = row.split("\t")
        if len(parts) != 4:
            continue
        file, index, families, style = parts
        fams = [f.strip() for f in families.split(",") if f.strip()]
        known = [f for f in fams if _rank(f) < len(KAI_FAMILIES)]
        # The first style is the face's own ("Light,Regular" is a Light face).
        if not known or style.split(",")[0].strip() not in REGULAR_STYLES:
            continue
        fam = min(known, key=_rank)
        faces.append(FontFace(Path(file), fam, int(index) if index.isdigit() else 0))
    return faces


def font_dirs() -> list[Path]:
    """The platform's font folders (XDG data dirs on Linux, the system and user folders on macOS and
    Windows)."""
    home = Path.home()
    dirs: list[Path] = []
    if sys.platform == "darwin":
        dirs += [home / "Library" / "Fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts")]
    elif sys.platform == "win32":
        dirs += [Path(os.environ.get("WINDIR", "C:\\Windows")) / "Fonts",
                 Path(os.environ.get("LOCALAPPDATA", home)) / "Microsoft" / "Windows" / "Fonts"]
    else:
        data_home = os.environ.get("XDG_DATA_HOME") or str(home / ".local" / "share")
        data_dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
        dirs += [Path(data_home) / "fonts", home / ".fonts"]
        dirs += [Path(d) / "fonts" for d in data_dirs.split(":") if d]
    return dirs


def _from_folders(dirs: list[Path]) -> list[FontFace]:
    """Kai faces in font folders, for machines without fontconfig: files with "kai" in their name."""
    from PIL import ImageFont

    faces = []
    for d in dirs:
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.suffix.lower() not in FONT_SUFFIXES or "kai" not in p.name.lower():
                continue
            try:
                family, style = ImageFont.truetype(str(p), 16).getname()
            except OSError:
                continue
            if family and _rank(family) < len(KAI_FAMILIES) and style in REGULAR_STYLES:
                faces.append(FontFace(p, family))
    return faces


def discover() -> list[FontFace]:
    """Every 楷 face found, best first (fontconfig, else the font folders). Empty when there is none."""
    faces = _from_fontconfig() or _from_folders(font_dirs())
    seen, out = set(), []
    for f in sorted(faces, key=lambda f: (_rank(f.family), str(f.path))):
        if (f.path, f.index) not in seen and f.path.is_file():
            seen.add((f.path, f.index))
            out.append(f)
    return out


_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _discovered() -> tuple[FontFace, ...]:
    return tuple(discover())


def find_faces() -> list[FontFace]:
    """The faces cards use: SHIREN_CARD_FONT first when set, then the discovered ones.
    FontMissingError (with how to install one) when there is none."""
    explicit = os.environ.get(FONT_ENV, "").strip()
    with _lock:
        found = list(_discovered())
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise FontMissingError(f"{FONT_ENV} points to {p}, which is not a font file; {INSTALL_HINT}")
        return [FontFace(p, p.stem)] + [f for f in found if f.path != p]
    if not found:
        raise FontMissingError(f"no 楷 font found for poem cards; {INSTALL_HINT}")
    return found


def font_available() -> bool:
    try:
        find_faces()
    except FontMissingError:
        return False
    return True


def clear_cache() -> None:
    """Forget what was discovered (after installing a font, and in tests)."""
    _discovered.cache_clear()
    _glyphs.cache_clear()
    _truetype.cache_clear()


@functools.lru_cache(maxsize=8)
def _glyphs(path: Path, index: int) -> frozenset[int]:
    """The code points a face has (its cmap)."""
    from fontTools.ttLib import TTFont

    try:
        with TTFont(str(path), fontNumber=index, lazy=True) as f:
            return frozenset(f.getBestCmap() or {})
    except Exception:  # noqa: BLE001 — an unreadable table: treat every character as present
        return frozenset()


@functools.lru_cache(maxsize=64)
def _truetype(path: Path, index: int, size: int):
    from PIL import ImageFont

    try:
        return ImageFont.truetype(str(path), size, index=index)
    except OSError as e:
        raise FontMissingError(f"cannot read the font {path}: {e}; {INSTALL_HINT}") from e


class FontSet:
    """The primary 楷 face and its fallbacks, at any size; `font_for(char, size)` picks the face that
    has the character (the primary when none has it)."""

    def __init__(self, faces: list[FontFace]) -> None:
        if not faces:
            raise FontMissingError(f"no 楷 font found for poem cards; {INSTALL_HINT}")
        self.faces = faces
        self.primary = faces[0]

    @classmethod
    def load(cls) -> FontSet:
        return cls(find_faces())

    def font(self, size: int):
        return _truetype(self.primary.path, self.primary.index, max(1, int(size)))

    def font_for(self, char: str, size: int):
        cp = ord(char[0]) if char else 0
        for face in self.faces:
            glyphs = _glyphs(face.path, face.index)
            if not glyphs or cp in glyphs:
                return _truetype(face.path, face.index, max(1, int(size)))
        return self.font(size)

    @property
    def name(self) -> str:
        return self.primary.family
