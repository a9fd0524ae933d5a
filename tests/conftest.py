"""Shared fixtures. Tests make their own small data; nothing is downloaded.

Hypothesis example counts come from TOKEMBED_HYPOTHESIS_EXAMPLES (default 100). The default-corpus
cache is moved to a temporary folder for every item, doctests included, by the root conftest.py.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "tokembed",
    max_examples=int(os.environ.get("TOKEMBED_HYPOTHESIS_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("tokembed")

SMALL_TEXT = (
    "The quick brown fox jumps over the lazy dog.\n"
    "Pack my box with five dozen liquor jugs.\n"
    "Sphinx of black quartz, judge my vow.\n"
    "Käse, Straße und Grüße — naïve café; 東京とソウル. Ünïcödé ✓ 🙂\n"
)


@pytest.fixture
def small_corpus(tmp_path):
    """A small multi-script text file (about 10 KB) for fast training."""
    p = tmp_path / "small.txt"
    p.write_text(SMALL_TEXT * 40, encoding="utf-8")
    return p
