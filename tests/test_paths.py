import pytest

from tokembed._paths import existing_local_path
from tokembed.errors import CorpusError, HubIdError


def test_existing_missing_and_hub_like(tmp_path):
    assert existing_local_path(tmp_path, expected="x", error=CorpusError) == tmp_path
    with pytest.raises(HubIdError, match="not a local path.*offline.*local folder"):
        existing_local_path("org/some-model", expected="a folder", error=CorpusError)
    with pytest.raises(CorpusError, match="no such file or folder; pass a folder"):
        existing_local_path(tmp_path / "nope" / "vectors.vec", expected="a folder", error=CorpusError)
