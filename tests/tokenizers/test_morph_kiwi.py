"""The kiwi analyzer of the morph kind: lossless on Korean, saved and loaded, measured against Kiwi itself."""

import json
import subprocess
import sys
import unicodedata

import pytest
from _ko_data import KO_TEXT, korean_lines
from _spm_data import training_lines
from hypothesis import given
from hypothesis import strategies as st

from tokembed.cli import main
from tokembed.errors import ConfigError, DependencyError
from tokembed.tokenizers import KiwiSegmenter, MorphTokenizer, load_tokenizer, train_tokenizer
from tokembed.tokenizers.analyzers import boundary_agreement, letter_cuts, morphs_from_spans

try:
    import kiwipiepy  # noqa: F401

    HAVE_KIWI = True
except ImportError:
    HAVE_KIWI = False
needs_kiwi = pytest.mark.skipif(not HAVE_KIWI, reason="kiwipiepy is not installed (pip install 'tokembed[ko]')")

# Text the round trips draw from: Hangul syllables, conjoining jamo (NFD), compatibility jamo, spaces,
# and any other character (mixed scripts, digits, emoji); no lone surrogates (not valid Unicode).
hangul = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)
jamo = st.characters(min_codepoint=0x1100, max_codepoint=0x11FF)
compat_jamo = st.characters(min_codepoint=0x3131, max_codepoint=0x318E)
spaces = st.sampled_from([" ", "\t", "\n", "\u3000"])
other = st.characters(blacklist_categories=("Cs",))
korean_text = st.text(alphabet=st.one_of(hangul, hangul, jamo, compat_jamo, spaces, other), max_size=60)


@given(st.text(min_size=1, max_size=12), st.lists(st.tuples(st.integers(-3, 15), st.integers(0, 6)), max_size=8))
def test_morphs_from_spans_always_join_to_the_word(word, spans):
    morphs = morphs_from_spans(word, spans)
    assert "".join(morphs) == word and all(morphs)


def test_unknown_analyzer_is_a_config_error():
    with pytest.raises(ConfigError, match="analyzer='kiwii' is not known; pass one of .*kiwi.*morfessor"):
        MorphTokenizer.train(KO_TEXT.splitlines(), 300, analyzer="kiwii")
    with pytest.raises(ConfigError, match="not both"):
        MorphTokenizer.train(KO_TEXT.splitlines(), 300, analyzer="kiwi", segmenter=object())


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # import kiwipiepy -> ImportError, as when it is absent
    with pytest.raises(DependencyError, match=r"pip install 'tokembed\[ko\]'"):
        MorphTokenizer.train(KO_TEXT.splitlines(), 300, analyzer="kiwi")


@pytest.fixture(scope="module")
def kiwi_tok():
    if not HAVE_KIWI:
        pytest.skip("kiwipiepy is not installed (pip install 'tokembed[ko]')")
    return MorphTokenizer.train(korean_lines(), 900, analyzer="kiwi", progress=False)


@needs_kiwi
def test_cuts_are_kiwi_offsets_not_normalised_forms():
    seg = KiwiSegmenter()
    # Kiwi analyses 했 as 하 + 었 and 갔 as 가 + 았 (normalised forms); the cut text keeps the syllables.
    assert seg.segment("했다") == ["했", "다"]
    assert seg.segment("학교에") == ["학교", "에"]
    assert seg.segment("API를") == ["API", "를"]
    assert seg.segment_many(["했다", "학교에"]) == [["했", "다"], ["학교", "에"]]


@needs_kiwi
@given(korean_text)
def test_round_trip_korean(kiwi_tok, text):
    ids = kiwi_tok.encode(text)
    assert kiwi_tok.decode(ids) == text
    assert ids == kiwi_tok._encode_reference(text)  # the cached per-word path equals chunk-by-chunk encoding


@needs_kiwi
def test_round_trip_decomposed_jamo_the_documented_exception(kiwi_tok):
    """NFD text stays lossless; a cut may fall between the jamo of one syllable (documented in analyzers.py)."""
    for text in ["한국어를 배웠다", "ㅋㅋㅋ 했다 ㅎㅎ", "갔다.\t\u3000했어요  "]:
        nfd = unicodedata.normalize("NFD", text)
        assert kiwi_tok.decode(kiwi_tok.encode(nfd)) == nfd
        assert kiwi_tok.decode(kiwi_tok.encode(text)) == text
        assert kiwi_tok.encode(nfd) != kiwi_tok.encode(text)  # no normalisation: other code points, other ids


@needs_kiwi
def test_pieces_never_cross_kiwi_boundaries(kiwi_tok):
    """Every morpheme boundary of the analyzer (word by word) is a token boundary: recall 1 against the segmenter."""
    for line in KO_TEXT.splitlines():
        _, offsets = kiwi_tok.encode_with_offsets(line)
        ends = letter_cuts(line, ((a, b - a) for a, b in offsets))
        pos, morph_cuts = 0, set()
        for chunk in kiwi_tok.chunks(line):
            pos += len(chunk)
            morph_cuts.add(pos)
        assert letter_cuts(line, ((0, p) for p in morph_cuts)) <= ends, line


@needs_kiwi
def test_boundary_agreement_beats_unigram(tmp_path):
    """On held-out lines, against Kiwi's analysis of each whole line (in context), the kiwi morph tokenizer
    recalls more morpheme boundaries than a unigram model of the same size trained on the same lines."""
    lines = korean_lines()
    train, held = [t for i, t in enumerate(lines) if i % 5], lines[::5]
    path = tmp_path / "ko.txt"
    path.write_text("\n".join(train) + "\n", encoding="utf-8")
    morph = train_tokenizer("morph", [str(path)], 900, analyzer="kiwi", progress=False)
    uni = train_tokenizer("unigram", [str(path)], 900, progress=False)
    p_k, r_k = boundary_agreement(morph, held, KiwiSegmenter())
    p_u, r_u = boundary_agreement(uni, held, KiwiSegmenter())
    assert r_k >= 0.95 and r_k > r_u, (r_k, r_u)
    assert 0.0 < p_k <= 1.0 and 0.0 < p_u <= 1.0


@needs_kiwi
def test_save_load_same_analyzer_and_fingerprint(kiwi_tok, tmp_path):
    kiwi_tok.save(tmp_path / "k")
    blob = json.loads((tmp_path / "k" / "segmenter.json").read_text())
    meta = json.loads((tmp_path / "k" / "tokembed.json").read_text())
    assert blob["name"] == "kiwi" and meta["options"]["segmenter"] == "kiwi"
    back = load_tokenizer(tmp_path / "k")
    assert back.segmenter.name == "kiwi" and back.fingerprint == kiwi_tok.fingerprint == meta["fingerprint"]
    # the analyzer is part of the fingerprint: the same vocab cut by another analyzer gives other ids
    assert kiwi_tok.fingerprint != kiwi_tok.vocab.fingerprint
    text = "어제 선생님께서 숙제를 내 주셨습니다. 처음 보는 단어: 무지개떡"
    assert back.encode(text) == kiwi_tok.encode(text)


@needs_kiwi
def test_loading_without_kiwipiepy_names_the_extra(kiwi_tok, tmp_path, monkeypatch):
    kiwi_tok.save(tmp_path / "k")
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    with pytest.raises(DependencyError, match=r"tokembed\[ko\]"):
        load_tokenizer(tmp_path / "k")


@needs_kiwi
def test_cli_train_with_analyzer(tmp_path, capsys):
    path = tmp_path / "ko.txt"
    path.write_text(KO_TEXT * 3, encoding="utf-8")
    out = tmp_path / "mk"
    rc = main(["tokenizer", "train", "--kind", "morph", "--analyzer", "kiwi", "--vocab-size", "420", "-o", str(out), f"ko={path}"])
    assert rc == 0 and load_tokenizer(out).segmenter.name == "kiwi"
    rc = main(["tokenizer", "train", "--kind", "unigram", "--analyzer", "kiwi", "-o", str(tmp_path / "u"), str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown option(s) ['analyzer']" in err and len(err.strip().splitlines()) == 1


@needs_kiwi
def test_bad_kiwi_model_type_is_a_config_error():
    with pytest.raises(ConfigError, match="model_type='nope' is not a kiwipiepy model"):
        MorphTokenizer.train(KO_TEXT.splitlines(), 420, analyzer="kiwi", segmenter_options={"model_type": "nope"})
    with pytest.raises(ConfigError, match="segmenter_options .* do not fit it"):
        MorphTokenizer.train(KO_TEXT.splitlines(), 420, analyzer="kiwi", segmenter_options={"max_types": 3})


def test_kiwipiepy_is_imported_lazily():
    """Importing tokembed's tokenizers (the kiwi analyzer registered among them) does not import kiwipiepy."""
    code = "import sys, tokembed.tokenizers, tokembed.tokenizers.analyzers; print('kiwipiepy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_analyzer_morfessor_is_the_default():
    """Naming the default analyzer changes nothing: same segmenter, same fingerprint (none added), same ids."""
    opts = {"segmenter_options": {"max_types": 60}, "progress": False}
    named = MorphTokenizer.train(training_lines(4), 340, analyzer="morfessor", **opts)
    default = MorphTokenizer.train(training_lines(4), 340, **opts)
    assert named.segmenter.name == default.segmenter.name == "morfessor"
    assert named.fingerprint == default.fingerprint == default.vocab.fingerprint
    assert named.encode("unhappiness of the quartz") == default.encode("unhappiness of the quartz")
