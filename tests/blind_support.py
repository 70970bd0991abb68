"""Shared by the blind-reading tests: a reader filling a sheet."""

from __future__ import annotations

import re


def fill(sheet: str, answer) -> str:
    """A reader filling every blank: answer(no) → dict of field → text."""
    out, no = [], 0
    for line in sheet.splitlines():
        m = re.match(r"^## (\d+)$", line)
        if m:
            no = int(m.group(1))
        f = re.match(r"^- (\w+): $", line)
        out.append(f"- {f.group(1)}: {answer(no)[f.group(1)]}" if f and no else line)
    return "\n".join(out)
