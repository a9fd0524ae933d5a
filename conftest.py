"""Root fixtures for every test item, including the doctests of src/tokembed (tests/conftest.py holds the rest)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the default-corpus cache per test session, never in the user's home (doctests included)."""
    monkeypatch.setenv("TOKEMBED_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
