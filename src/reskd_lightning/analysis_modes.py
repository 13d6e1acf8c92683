"""The modes of the key-finding analysis (:mod:`reskd_lightning.analysis`), importable without torch so that
``reskd analyze --help`` starts at once."""

from __future__ import annotations

#: The modes of the analysis, by letter (the CSV's ``mode`` column), and what each evaluates.
ANALYSIS_MODES: dict[str, str] = {
    "A": "high-res network, high-res input",
    "B": "high-res network, low-res input",
    "C": "network trained at low res",
    "D": "low-res frames upsampled into the high-res network",
    "E": "ResKD student",
}

__all__ = ["ANALYSIS_MODES"]
