"""Shared fixtures: the real dataset excerpts in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; the test is skipped when the real excerpts are not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real dataset excerpts not found at {SHARED_DATA}")
    return SHARED_DATA
