"""Reading word2vec (text/binary), GloVe and fastText files, and aligning them to a Vocab."""

import gzip
import struct

import numpy as np
import pytest
import torch

from hypothesis import given
from hypothesis import strategies as st

from tokembed.embeddings import TokenEmbedding, init_from_pretrained, read_vectors, write_vectors
from tokembed.embeddings.pretrained import candidates, detect_format
from tokembed.errors import ConfigError, EmbeddingSourceError, VectorFileError
from tokembed.vocab import Vocab

WORDS = ["the", "cat", "Dog", "naïve", "東京"]
MATRIX = np.array(
    [[0.5, -1.0, 2.0], [1.25, 0.0, -0.75], [3.0, 1.0, 0.125], [-2.5, 0.5, 1.0], [0.0, 0.25, -4.0]], dtype=np.float32
)


def write_text(path, words, matrix, *, header=True, newline="\n"):
    lines = [f"{len(words)} {matrix.shape[1]}"] if header else []
    lines += [w + " " + " ".join(repr(float(x)) for x in row) for w, row in zip(words, matrix)]
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


def write_binary(path, words, matrix, *, trailing_newline=True):
    out = [f"{len(words)} {matrix.shape[1]}\n".encode()]
    for w, row in zip(words, matrix):
        out.append(w.encode("utf-8") + b" " + struct.pack(f"<{len(row)}f", *row.tolist()))
        if trailing_newline:
            out.append(b"\n")
    path.write_bytes(b"".join(out))
    return path


@pytest.mark.parametrize(
    "kind, fmt",
    [
        ("w2v", "word2vec"),
        ("glove", "glove"),
        ("bin", "word2vec-binary"),
        ("bin-nonl", "word2vec-binary"),
        ("crlf", "word2vec"),
    ],
)
def test_formats_read_exact_values_and_are_detected(tmp_path, kind, fmt):
    p = tmp_path / "v.txt"
    if kind == "w2v":
        write_text(p, WORDS, MATRIX)
    elif kind == "glove":
        write_text(p, WORDS, MATRIX, header=False)
    elif kind == "crlf":
        write_text(p, WORDS, MATRIX, newline="\r\n")
    else:
        write_binary(p, WORDS, MATRIX, trailing_newline=kind == "bin")
    assert detect_format(p) == fmt
    vecs = read_vectors(p, progress=False)
    tokens, matrix = vecs
    assert tokens == WORDS and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, MATRIX)  # exact: the values are representable in float32
    assert vecs.format == fmt and vecs.duplicates == 0


def test_fasttext_vec_and_gzip_and_forced_format(tmp_path):
    p = write_text(tmp_path / "cc.vec", WORDS, MATRIX)
    assert read_vectors(p, format="fasttext", progress=False).format == "fasttext"
    gz = tmp_path / "v.txt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    np.testing.assert_array_equal(read_vectors(gz, progress=False).matrix, MATRIX)
    # forcing glove on a headered file makes the header a malformed line
    with pytest.raises(VectorFileError, match=r"cc\.vec:2: expected a word and 1 values, got 3.*format='word2vec'"):
        read_vectors(p, format="glove", progress=False)
    with pytest.raises(ConfigError, match="format='xml' is not known"):
        read_vectors(p, format="xml", progress=False)


def test_detects_text_with_lines_longer_than_the_first_read(tmp_path):
    wide = np.arange(2 * 9000, dtype=np.float32).reshape(2, 9000) / 7  # ~100 KB per line
    p = write_vectors(tmp_path / "wide.txt", ["a", "b"], wide)
    assert detect_format(p) == "word2vec"
    np.testing.assert_array_equal(read_vectors(p, progress=False).matrix, wide)


def test_limit_duplicates_and_words_with_spaces(tmp_path):
    p = tmp_path / "glove.txt"
    p.write_text("the 1 2\ncat 3 4\nthe 5 6\n. . . 7 8\n", encoding="utf-8")
    v = read_vectors(p, progress=False)
    assert v.tokens == ["the", "cat", ". . ."] and v.duplicates == 1
    assert v.matrix[0].tolist() == [1, 2]  # first wins
    assert read_vectors(p, limit=1, progress=False).tokens == ["the"]
    with pytest.raises(ConfigError, match="limit=0 reads nothing"):
        read_vectors(p, limit=0, progress=False)
    b = write_binary(tmp_path / "v.bin", ["a", "b", "a"], MATRIX[:3])
    vb = read_vectors(b, progress=False)
    assert vb.tokens == ["a", "b"] and vb.duplicates == 1 and vb.matrix[0].tolist() == MATRIX[0].tolist()
    assert read_vectors(b, limit=2, progress=False).tokens == ["a", "b"]


@pytest.mark.parametrize(
    "content, match",
    [
        ("2 3\nthe 1 2 3\ncat 1 2\n", r"v\.txt:3: expected a word and 3 values, got 2"),
        ("2 3\nthe 1 2 3\ncat 1 x 3\n", r"v\.txt:3: a value of word 'cat' is not a number"),
        ("2 3\nthe 1 2 nan\ncat 1 2 3\n", r"v\.txt:2: word 'the' has a NaN/Inf"),
        ("3 3\nthe 1 2 3\ncat 1 2 3\n", "announces 3 vectors"),
        ("", "empty"),
    ],
)
def test_malformed_text_names_file_and_line(tmp_path, content, match):
    p = tmp_path / "v.txt"
    p.write_text(content)
    with pytest.raises(VectorFileError, match=match) as e:
        read_vectors(p, progress=False)
    assert isinstance(e.value, EmbeddingSourceError)


def test_malformed_binary_and_bad_header(tmp_path):
    p = write_binary(tmp_path / "v.bin", WORDS, MATRIX)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(VectorFileError, match=r"byte \d+: file ends inside entry 5 of 5.*truncated"):
        read_vectors(cut, progress=False)
    bad = tmp_path / "bad.vec"
    bad.write_text("3 x\nthe 1 2 3\n")
    with pytest.raises(VectorFileError, match=r"bad\.vec:1: header"):
        read_vectors(bad, format="word2vec", progress=False)
    with pytest.raises(VectorFileError, match="no such vector file"):
        read_vectors(tmp_path / "nope.vec", progress=False)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 1 2\n".encode("latin-1"))
    with pytest.raises(VectorFileError, match=r"latin\.txt:1: invalid UTF-8.*encoding_errors='replace'"):
        read_vectors(latin, progress=False)
    assert read_vectors(latin, progress=False, encoding_errors="replace").tokens == ["caf\ufffd"]


def test_binary_reader_agrees_with_gensim(tmp_path):
    gensim_models = pytest.importorskip("gensim.models")
    p = write_binary(tmp_path / "v.bin", WORDS, MATRIX)
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(p), binary=True)
    tokens, matrix = read_vectors(p, progress=False)
    assert tokens == list(kv.index_to_key)
    np.testing.assert_array_equal(matrix, kv.vectors)


def test_candidates_cover_markers_and_case():
    assert [k for k, _ in candidates("\u0120Hello")] == ["\u0120Hello", "Hello", "\u0120hello", "hello"]
    assert candidates("The") == [("The", "exact"), ("the", "case")]
    assert candidates("low</w>")[1] == ("low", "marker")
    assert candidates("re@@")[1] == ("re", "marker")
    assert candidates("##")[:1] == [("##", "exact")] and len(candidates("##")) == 2  # a bare marker is a token


def test_init_coverage_fill_and_padding(tmp_path):
    p = write_text(tmp_path / "v.vec", WORDS, MATRIX)
    vocab = Vocab(["<pad>", "the", "\u2581cat", "dog", "##naïve", "zebra", "東京"], special_tokens={"pad": "<pad>"})
    emb = TokenEmbedding(len(vocab), 3, padding_idx=0)
    r = init_from_pretrained(emb, vocab, p, progress=False)
    assert (r.exact, r.fallback, r.missing, r.skipped) == (2, 3, 1, 1)
    assert r.fallback_kinds == {"marker": 2, "case": 1}
    assert r.missing_examples == ["zebra"] and r.coverage == pytest.approx(5 / 6)
    w = emb.weight.detach().numpy()
    np.testing.assert_array_equal(w[0], 0)  # padding row untouched (zero)
    np.testing.assert_array_equal(w[[1, 2, 3, 4, 6]], MATRIX[[0, 1, 2, 3, 4]])
    np.testing.assert_allclose(w[5], MATRIX.mean(0), rtol=1e-6)  # fill="mean": mean of matched rows
    assert r.to_dict()["coverage"] == pytest.approx(5 / 6)


def test_init_random_fill_is_seeded_and_keep_keeps():
    vocab = Vocab(["the", "unknown1", "unknown2", "cat"])
    vecs = (["the", "cat"], MATRIX[:2])
    a, b = torch.zeros(4, 3), torch.zeros(4, 3)
    init_from_pretrained(a, vocab, vecs, fill="random", seed=3)
    init_from_pretrained(b, vocab, vecs, fill="random", seed=3)
    assert torch.equal(a, b) and not torch.equal(a[1], a[2])
    c = torch.full((4, 3), 7.0)
    init_from_pretrained(c, vocab, vecs, fill="keep")
    assert c[1].tolist() == [7.0, 7.0, 7.0] and c[0].tolist() == MATRIX[0].tolist()
    with pytest.raises(ConfigError, match="4 rows but the vocab has 3"):
        init_from_pretrained(torch.zeros(4, 3), Vocab(["a", "b", "c"]), vecs)
    with pytest.raises(ConfigError, match="no vocab token was found"):
        init_from_pretrained(torch.zeros(2, 3), Vocab(["x", "y"]), vecs)


def test_projection_pca_and_random():
    rng = np.random.default_rng(0)
    src = rng.standard_normal((50, 8)).astype(np.float32)
    words = [f"w{i}" for i in range(50)]
    vocab = Vocab(words)
    with pytest.raises(ConfigError, match="dimension 8 but the embedding has 4; pass project="):
        init_from_pretrained(torch.zeros(50, 4), vocab, (words, src))
    # random up-projection 8 -> 12 keeps dot products exactly (orthonormal rows)
    up = torch.zeros(50, 12)
    r = init_from_pretrained(up, vocab, (words, src), project="random", seed=1)
    assert r.projection == "random"
    np.testing.assert_allclose(up.numpy() @ up.numpy().T, src @ src.T, atol=1e-4)
    # PCA down-projection 8 -> 4 equals sklearn's PCA transform (up to the sign of each component)
    sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
    down = torch.zeros(50, 4)
    r = init_from_pretrained(down, vocab, (words, src), project="pca")
    ref = sklearn_decomposition.PCA(n_components=4, svd_solver="full").fit_transform(src)
    np.testing.assert_allclose(np.abs(down.numpy()), np.abs(ref), atol=1e-4)
    # PCA cannot add dimensions: zero-padded
    wide = torch.ones(50, 10)
    assert init_from_pretrained(wide, vocab, (words, src), project="pca").projection == "pca+zero-pad"
    assert torch.equal(wide[:, 8:], torch.zeros(50, 2))


_WORD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="\x85\ufeff"),
    min_size=1,
    max_size=8,
)


@given(
    words=st.lists(_WORD, min_size=1, max_size=6, unique=True),
    dim=st.integers(1, 5),
    data=st.data(),
    fmt=st.sampled_from(["word2vec", "glove", "word2vec-binary"]),
)
def test_write_read_round_trip(tmp_path_factory, words, dim, data, fmt):
    floats = st.floats(width=32, allow_nan=False, allow_infinity=False)
    rows = data.draw(st.lists(st.lists(floats, min_size=dim, max_size=dim), min_size=len(words), max_size=len(words)))
    matrix = np.array(rows, dtype=np.float32).reshape(len(words), dim)
    p = write_vectors(tmp_path_factory.mktemp("rt") / "v", words, matrix, format=fmt)
    tokens, back = read_vectors(p, progress=False, format=fmt)
    assert tokens == words
    np.testing.assert_array_equal(back, matrix)


def test_write_vectors_rejects_what_the_formats_cannot_hold(tmp_path):
    with pytest.raises(ConfigError, match="contain a space"):
        write_vectors(tmp_path / "v", ["a b"], np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="one row per token"):
        write_vectors(tmp_path / "v", ["a", "b"], np.zeros((1, 2)))
