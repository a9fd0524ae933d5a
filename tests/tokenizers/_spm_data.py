"""Shared small data for the sentencepiece-kind tests (tests make their own data)."""

from hypothesis import strategies as st

# Text without lone surrogates (not valid Unicode; the documented exception of every lossless kind).
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)

LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "Sphinx of black quartz, judge my vow.",
    "Käse, Straße und Grüße — naïve café; 東京とソウル.",
    "unhappiness, happiness, unhappy, happily, reconstruction, constructions",
    "    indented code(x, y) -> return x + y  # comment",
]


def training_lines(n: int = 30) -> list[str]:
    """A few hundred lines with some variety (deterministic)."""
    out = []
    for k in range(n):
        for i, line in enumerate(LINES):
            out.append(f"{line} {k * 7 + i} {line.split()[k % 3]}s")
    return out
