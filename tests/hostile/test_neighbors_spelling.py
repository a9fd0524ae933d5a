"""``tokembed neighbors`` with a token the vocabulary spells differently: the hint names the right spelling first.

Before the fix ``King`` on an uncased model suggested ``ing`` (difflib's closest string) and a
character held only as a byte token got no hint of its ``<0x65>`` spelling.
"""

import pytest
from _hostile import TOKENS, assert_one_line_error, tiny_hf_folder

from tokembed.tokenizers.byte import byte_token


def test_uncased_vocab_suggests_the_case_folded_token_first(hf_folder, cli):
    rc, _, err = cli("neighbors", hf_folder, "King")
    assert_one_line_error(rc, err, "'King' is not in the vocabulary", "did you mean 'king'")


@pytest.mark.parametrize(("query", "hint"), [("e", "'<0x65>'"), (" ", "'<0x20>'")])
def test_byte_token_spelling_is_suggested(tmp_path, cli, query, hint):
    folder = tiny_hf_folder(tmp_path / "bytes", tokens=TOKENS + [byte_token(b) for b in range(256)])
    rc, _, err = cli("neighbors", folder, query)
    assert_one_line_error(rc, err, f"did you mean {hint}")


def test_byte_level_bpe_spelling_of_a_leading_space(tmp_path, cli):
    folder = tiny_hf_folder(tmp_path / "gpt2", tokens=["the", "Ġthe", "Ġking", "king"])
    rc, _, err = cli("neighbors", folder, " King")
    assert_one_line_error(rc, err, "did you mean 'Ġking'")


def test_a_found_token_still_gets_neighbours(hf_folder, cli):
    rc, out, _ = cli("neighbors", hf_folder, "king", "-k", "2")
    assert rc == 0 and out.startswith("king:") and len(out.strip().splitlines()) == 3
