"""近体诗 tonal templates (王力《诗词格律》): the four standard forms, extended to any number of lines.

Five-char base line types (strict marks; 中 = either tone under the strict rule):
  A 仄仄平平仄 -> 中仄平平仄      B 平平仄仄平 -> 平平仄仄平 (pos 1 fixed: 孤平 otherwise)
  C 平平平仄仄 -> 中平平仄仄      D 仄仄仄平平 -> 中仄仄平平
Seven-char lines put two chars of the opposite tone in front (pos 1 free).
Sequences (粘 / 对): 仄起不入韵 A B C D…, 仄起入韵 D B C D…, 平起不入韵 C D A B…, 平起入韵 B D A B….
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

_BASE = {"A": "仄仄平平仄", "B": "平平仄仄平", "C": "平平平仄仄", "D": "仄仄仄平平"}
_STRICT5 = {"A": "中仄平平仄", "B": "平平仄仄平", "C": "中平平仄仄", "D": "中仄仄平平"}
_NEXT = {"A": "B", "B": "C", "C": "D", "D": "A"}
_OPP = {"平": "仄", "仄": "平"}


@dataclass(frozen=True)
class Template:
    name: str  # e.g. "仄起首句不入韵"
    lines: tuple[str, ...]  # strict marks over 平 / 仄 / 中
    first_line_rhymes: bool
    full: tuple[str, ...] = ()  # the unmarked (all 平/仄) pattern
    types: tuple[str, ...] = ()  # line types A/B/C/D

    @property
    def chars_per_line(self) -> int:
        return len(self.lines[0]) if self.lines else 0


def line_pattern(kind: str, chars: int, strict: bool = True) -> str:
    base = _BASE[kind]
    if chars == 5:
        return _STRICT5[kind] if strict else base
    pre = _OPP[base[0]] * 2
    if strict:
        return "中" + pre[1] + _STRICT5[kind]
    return pre + base


def _types(start: str, first_rhymes: bool, n: int) -> list[str]:
    seq = [start]
    while len(seq) < n:
        seq.append(_NEXT[seq[-1]])
    if first_rhymes:
        seq[0] = {"A": "D", "C": "B"}[start]
    return seq


@lru_cache(maxsize=64)
def _templates(chars: int, n: int) -> tuple[Template, ...]:
    out = []
    for start in ("A", "C"):
        for fr in (False, True):
            ts = _types(start, fr, n)
            full = tuple(line_pattern(t, chars, strict=False) for t in ts)
            qi = full[0][1]
            name = f"{qi}起首句{'入韵' if fr else '不入韵'}"
            out.append(Template(name, tuple(line_pattern(t, chars) for t in ts), fr, full, tuple(ts)))
    return tuple(out)


def jinti_templates(chars_per_line: int, n_lines: int) -> list[Template]:
    """The four standard templates (仄起/平起 × 首句入韵/不入韵) for `n_lines` lines of 5 or 7 chars."""
    if chars_per_line not in (5, 7):
        raise ValueError("近体 lines have 5 or 7 characters")
    if n_lines < 2 or n_lines % 2:
        raise ValueError("近体 poems have an even number of lines")
    return list(_templates(chars_per_line, n_lines))


def rhyme_lines(template: Template) -> list[int]:
    """Indices of the lines whose last char must rhyme (even lines, plus the first when it rhymes)."""
    n = len(template.lines)
    return ([0] if template.first_line_rhymes else []) + list(range(1, n, 2))


def relaxed_positions(chars: int) -> tuple[int, ...]:
    """0-based positions checked under the relaxed rule (一三五不论): 2, 4, 6 and the last."""
    return tuple(i for i in range(chars) if i % 2 == 1 or i == chars - 1)
