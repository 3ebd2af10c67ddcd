"""Labelled messages shipped with kefu: intent examples, the FAQ's held-out set, anger fixture."""
from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).parent


def labelled(name: str) -> list[tuple[str, str]]:
    """(label, message) rows of a tab-separated file here; '#' lines are comments."""
    rows = []
    for line in (_DIR / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, _, text = line.partition("\t")
            rows.append((label, text))
    return rows
