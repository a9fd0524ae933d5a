"""Scalar quantization: error bounds, exact int4 packing, fused kernel == reference bit for bit, bad options."""

import hashlib
import os
import shutil
import stat

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from tokembed.compress import _kernels
from tokembed.compress.quantize import QuantConfig, pack_int4, quantize, unpack_int4
from tokembed.errors import ConfigError, NonFiniteError


def _mat(V, D, seed=0, scale=1.0):
    return torch.randn(V, D, generator=torch.Generator().manual_seed(seed)) * scale


@given(V=st.integers(1, 12), D=st.integers(1, 40), bits=st.sampled_from([8, 4]), sym=st.booleans(),
       seed=st.integers(0, 1000), per_row=st.booleans())
def test_error_is_bounded_by_half_a_step(V, D, bits, sym, seed, per_row):
    W = _mat(V, D, seed, scale=10.0 ** (seed % 5 - 2))
    gs = None if per_row else next(g for g in (8, 4, 2, 1) if D % g == 0)
    qt = quantize(W, bits=bits, group_size=gs, symmetric=sym)
    step = qt.scale.repeat_interleave(D // qt.scale.shape[1], dim=1)  # (V, D)
    err = (qt.dequantize() - W).abs()
    assert bool((err <= step / 2 * (1 + 1e-5) + 1e-12).all())


def test_known_answer_int8_symmetric():
    qt = quantize(torch.tensor([[0.5, -1.0, 0.25, 1.0]]), bits=8)
    assert qt.codes.view(torch.int8).tolist() == [[64, -127, 32, 127]]  # round(w / (1/127))
    assert qt.nbytes == 4 + 4


def test_zero_row_and_constant_row_are_exact():
    W = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    for bits in (8, 4):
        for sym in (True, False):
            assert torch.equal(quantize(W, bits=bits, symmetric=sym).dequantize(), W)


@given(st.lists(st.lists(st.integers(0, 15), min_size=1, max_size=9), min_size=1, max_size=5).filter(
    lambda rows: len({len(r) for r in rows}) == 1))
def test_int4_pack_unpack_exact(rows):
    x = torch.tensor(rows, dtype=torch.uint8)
    packed = pack_int4(x)
    assert packed.shape == (x.shape[0], (x.shape[1] + 1) // 2)
    assert torch.equal(unpack_int4(packed, x.shape[1]), x)


def test_int4_known_packing_odd_d_and_negative_values():
    assert pack_int4(torch.tensor([[1, 2, 15]], dtype=torch.uint8)).tolist() == [[0x21, 0x0F]]
    W = torch.tensor([[-0.7, 0.1, -0.3, 0.7, -0.1]])  # odd D, negative values
    qt = quantize(W, bits=4)
    # symmetric int4: s = 0.7 / 7 = 0.1, q = [-7, 1, -3, 7, -1], stored nibbles q + 8
    assert unpack_int4(qt.codes, 5).tolist() == [[1, 9, 5, 15, 7]]
    assert torch.allclose(qt.dequantize(), W, atol=1e-6)


def _kernel_expected() -> bool:
    """A C compiler is here and the kernel is not switched off: then the kernel must build and run."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    return bool(cc) and os.environ.get("TOKEMBED_KERNELS", "1") != "0"


needs_kernel = pytest.mark.skipif(not _kernel_expected(), reason="no C compiler (or TOKEMBED_KERNELS=0): kernel not expected")


@pytest.fixture
def fresh_kernel(monkeypatch, tmp_path):
    """Forget the loaded kernel and use an empty cache, so the next call builds (the real one comes back after)."""
    monkeypatch.setenv("TOKEMBED_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_kernels, "_lib", None)
    monkeypatch.setattr(_kernels, "_status", "not built")
    return tmp_path / "cache" / "kernels"


@needs_kernel
def test_the_kernel_builds_where_a_compiler_exists():
    status = _kernels.kernel_status()
    assert status.startswith(_kernels.KERNEL_OK), status  # fails when the build failed: no silent fallback here


@needs_kernel
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("shape,gs", [((300, 64), None), ((300, 64), 16), ((50, 13), None), ((40, 24), 8), ((20, 1024), 128)])
def test_fused_kernel_matches_reference_bit_exactly(bits, sym, shape, gs, monkeypatch):
    W = _mat(*shape, seed=1)
    qt = quantize(W, bits=bits, group_size=gs, symmetric=sym)
    ids = torch.randint(0, shape[0], (3000,), generator=torch.Generator().manual_seed(2))  # 3000 × 1024 × 4 > 8 MiB
    with monkeypatch.context() as m:  # the fast call must not fall back to the torch reference
        m.setattr(_kernels, "_reference", lambda *a, **k: pytest.fail("the kernel did not run; the reference did"))
        fast = qt.gather(ids)
    ref = qt.gather_reference(ids)
    assert torch.equal(fast, ref)
    assert torch.equal(ref, qt.dequantize()[ids])


@needs_kernel
def test_kernel_cache_is_private_and_hash_verified(fresh_kernel):
    fresh_kernel.mkdir(parents=True)
    fresh_kernel.chmod(0o755)
    assert _kernels.kernel_status().startswith(_kernels.KERNEL_OK)
    assert stat.S_IMODE(fresh_kernel.stat().st_mode) == 0o700 and fresh_kernel.stat().st_uid == os.getuid()
    (so,) = fresh_kernel.glob("*.so")
    recorded = so.with_suffix(".sha256").read_text().strip()
    assert hashlib.sha256(so.read_bytes()).hexdigest() == recorded
    # a changed file is never loaded: it is rebuilt. It is changed as a new file moved over the old one:
    # writing in place would change the pages this process has mapped (the library is loaded), a crash
    tampered = so.with_name("tampered.tmp")
    tampered.write_bytes(so.read_bytes() + b"tampered")
    os.replace(tampered, so)
    _kernels._lib, _kernels._status = None, "not built"
    assert _kernels.kernel_status().startswith(_kernels.KERNEL_OK)
    assert hashlib.sha256(so.read_bytes()).hexdigest() == recorded and not so.read_bytes().endswith(b"tampered")


def test_failed_build_falls_back_with_one_warning_line(fresh_kernel, monkeypatch):
    monkeypatch.delenv("TOKEMBED_KERNELS", raising=False)
    monkeypatch.setenv("CC", "/bin/false")  # a compiler that always fails
    qt = quantize(_mat(10, 8), bits=4)
    ids = torch.tensor([3, 3, 0, 9])
    with pytest.warns(RuntimeWarning, match="fused int8/int4 gather is not available") as rec:
        out = qt.gather(ids)
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    assert _kernels.kernel_status().startswith("kernel build failed")
    assert torch.equal(out, qt.gather_reference(ids))


def test_a_cache_folder_owned_elsewhere_or_linked_is_refused(fresh_kernel, monkeypatch, tmp_path):
    monkeypatch.delenv("TOKEMBED_KERNELS", raising=False)
    (tmp_path / "elsewhere").mkdir()
    fresh_kernel.parent.mkdir(parents=True)
    fresh_kernel.symlink_to(tmp_path / "elsewhere")
    with pytest.warns(RuntimeWarning, match="not a plain folder"):
        status = _kernels.kernel_status()
    assert status.startswith("kernel build failed") and not list((tmp_path / "elsewhere").iterdir())


def test_kernels_switched_off(fresh_kernel, monkeypatch):
    monkeypatch.setenv("TOKEMBED_KERNELS", "0")
    qt = quantize(_mat(10, 8), bits=8)
    ids = torch.tensor([3, 3, 0, 9])
    assert torch.equal(qt.gather(ids), qt.gather_reference(ids))
    assert _kernels.kernel_status() == "disabled by TOKEMBED_KERNELS=0 (torch reference used)"


def test_empty_ids():
    qt = quantize(_mat(10, 8), bits=8)
    assert qt.gather(torch.zeros(0, dtype=torch.long)).shape == (0, 8)


def test_bad_options_name_value_and_fix():
    W = _mat(4, 12)
    with pytest.raises(ConfigError, match=r"bits=3 .*bits=8 or bits=4"):
        quantize(W, bits=3)
    with pytest.raises(ConfigError, match=r"group_size=5 does not divide .*D=12"):
        quantize(W, bits=8, group_size=5)
    with pytest.raises(ConfigError, match="2-D"):
        quantize(torch.zeros(3), bits=8)
    W[2, 1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"rows \[2\]"):
        quantize(W)
    assert QuantConfig(bits=4, group_size=4).check(12) == 4


def test_output_pool_reuses_a_buffer_only_when_no_tensor_uses_it():
    if not hasattr(_kernels.mmap, "MADV_HUGEPAGE"):
        pytest.skip("huge-page pool is Linux-only")
    n, d = 4096, 1024  # 16 MiB: above the pool threshold
    _kernels._pool.clear()
    a = _kernels.alloc_output(n, d)
    a.fill_(1.0)
    pa = a.data_ptr()
    view = a[5:9]
    del a
    b = _kernels.alloc_output(n, d)
    assert b.data_ptr() != pa and bool((view == 1.0).all())  # a view keeps the buffer in use
    del view, b
    c = _kernels.alloc_output(n, d)
    assert c.data_ptr() == pa  # nothing uses a's buffer any more: reused
    pc = c.data_ptr()
    d2 = _kernels.alloc_output(n, d)
    assert d2.data_ptr() != pc  # c alive -> another buffer
