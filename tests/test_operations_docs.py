"""docs/operations.md lists every setting (a new one without a line there fails here)."""

from __future__ import annotations

from pathlib import Path

from brandloop.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [
        f"BRANDLOOP_{name.upper()}"
        for name in Settings.model_fields
        if f"BRANDLOOP_{name.upper()}" not in text
    ]
    assert missing == []
