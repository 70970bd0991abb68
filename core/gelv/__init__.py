"""格律 engine: 平水韵 table, 近体 templates, 词牌 structures and the checker.

Importing this package is cheap (no torch / transformers / opencc); the data files load on first use.
"""

from core.gelv.checker import Analysis, CharNote, LineAnalysis, analyze, split_lines
from core.gelv.cipai import CipaiPattern, Clause, cipai_patterns, guess_cipai, top_cipai
from core.gelv.patterns import Template, jinti_templates, line_pattern, rhyme_lines
from core.gelv.table import (
    GROUP_NAMES,
    GROUP_SECTION,
    PING_GROUP_NAMES,
    Reading,
    cilin_bu,
    groups,
    is_known,
    ping_groups,
    readings,
    tone_classes,
)

__all__ = [
    "Analysis", "CharNote", "CipaiPattern", "Clause", "GROUP_NAMES", "GROUP_SECTION", "LineAnalysis",
    "PING_GROUP_NAMES", "Reading", "Template", "analyze", "cilin_bu", "cipai_patterns", "groups", "guess_cipai",
    "is_known", "jinti_templates", "line_pattern", "ping_groups", "readings", "rhyme_lines", "split_lines",
    "tone_classes", "top_cipai",
]
