"""Fused dequantizing gather: a tiny C kernel built with the system C compiler, plus its torch reference.

Why a kernel: a lookup into an int8 table done as ``q[ids].float() * s[ids]`` materialises
an int8 copy, an fp32 copy and a product — three passes over the output-sized data — and
is slower than ``nn.Embedding`` on fp32 (0.75–0.95×). The kernel reads each looked-up int8
(or packed int4) row once and writes fp32 once, with non-temporal stores for big outputs
(no read-for-ownership of the output lines). Big outputs are also allocated on
transparent huge pages (``madvise(MADV_HUGEPAGE)``): with 4 KiB pages the page faults of a
fresh 256 MiB output cost more than the copy itself.

How it is built: plain C99 (no torch headers, compiles in about a second), ``gcc -O3
-march=native -ffp-contract=off``, loaded with :mod:`ctypes` (which releases the GIL), run
on ``torch.get_num_threads()`` pthreads. The shared object is cached under
``$TOKEMBED_CACHE/kernels/`` (a folder owned by the user, mode 0700; refused if another user
owns it or it is a symlink), keyed by a hash of the source, flags and CPU, with the SHA-256 of
the built file next to it; the file is hashed again before every load and rebuilt on a
mismatch. If no compiler is found or the build fails, one warning line says so and every call
falls back to :func:`gather_dequant_reference` — same results, bit for bit (the kernel does the
multiply and the add as separate roundings, exactly like the reference; ``-ffp-contract=off``
forbids fusing them into an FMA). ``TOKEMBED_KERNELS=0`` selects the reference on purpose.

Safety: every entry point (:func:`gather_dequant`, :func:`gather_dequant_reference`) checks the
ids against the table's rows (:class:`TokenIdError`) and the table's shapes and dtypes against
each other before any row is read — the C code trusts its arguments.

Why it stays (numbers in ``docs/compression.md``, from ``bench_compress.py --kernel-vs-pytorch``):
into a large fresh output it is 2.3–3.3× faster than PyTorch's own FBGEMM ops
(``quantized::embedding_byte`` / ``embedding_4bit``) and a ``torch.compile``d gather; on small
batches int8 is on par and int4 behind FBGEMM's op, which cannot read these formats (symmetric,
group-wise). Into a preallocated output it only ties (memory-bound), so no such path is offered.

Dequantization formula served by both paths (per row r, group g = d // gs):

    x[n, d] = (q[r, d] + qoff) * S[r, g]  (+ Bz[r, g] if a bias is stored),  r = ids[n]

int8 stores q directly; int4 stores two nibbles per byte (element 2j in the low nibble).
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import platform
import shutil
import subprocess
import sys
import stat
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from ..corpus import _cache_dir as tokembed_cache_dir  # $TOKEMBED_CACHE or ~/.cache/tokembed
from ..embeddings.lookup import check_ids
from ..errors import ConfigError

__all__ = ["gather_dequant", "gather_dequant_reference", "check_gather", "kernel_status", "alloc_output", "KERNEL_OK"]

_C_SOURCE = r"""
#include <stdint.h>
#include <pthread.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

typedef struct {
  const uint8_t* q; const float* S; const float* Bz; const int64_t* ids; float* out;
  int64_t n0, n1, D, G, row_bytes; float qoff; int bits; int nt;
} job_t;

static void row_i8(const int8_t* qr, const float* sr, const float* br, int64_t D, int64_t G, float qoff, float* o, int nt) {
  const int64_t gs = D / G;
  for (int64_t g = 0; g < G; ++g) {
    const float s = sr[g];
    const int8_t* qg = qr + g * gs;
    float* og = o + g * gs;
    int64_t d = 0;
#ifdef __AVX2__
    const __m256 vs = _mm256_set1_ps(s), vo = _mm256_set1_ps(qoff);
    const int aligned = (((uintptr_t)og) & 31) == 0;
    if (br) {
      const __m256 vb = _mm256_set1_ps(br[g]);
      for (; d + 8 <= gs; d += 8) {
        __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(qg + d))));
        x = _mm256_add_ps(_mm256_mul_ps(_mm256_add_ps(x, vo), vs), vb);
        if (nt && aligned) _mm256_stream_ps(og + d, x); else _mm256_storeu_ps(og + d, x);
      }
    } else {
      for (; d + 8 <= gs; d += 8) {
        __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(qg + d))));
        x = _mm256_mul_ps(_mm256_add_ps(x, vo), vs);
        if (nt && aligned) _mm256_stream_ps(og + d, x); else _mm256_storeu_ps(og + d, x);
      }
    }
#endif
    if (br) { const float b = br[g]; for (; d < gs; ++d) og[d] = ((float)qg[d] + qoff) * s + b; }
    else    { for (; d < gs; ++d) og[d] = ((float)qg[d] + qoff) * s; }
  }
}

static void row_i4(const uint8_t* pr, const float* sr, const float* br, int64_t D, int64_t G, float qoff, float* o, int nt) {
  const int64_t gs = D / G;
  int64_t d = 0;
#ifdef __AVX2__
  if ((gs & 7) == 0) {
    const int aligned = (((uintptr_t)o) & 31) == 0;
    const __m128i m4 = _mm_set1_epi32(15);
    const __m256 vo = _mm256_set1_ps(qoff);
    for (int64_t g = 0; g < G; ++g) {
      const __m256 vs = _mm256_set1_ps(sr[g]);
      const __m256 vb = _mm256_set1_ps(br ? br[g] : 0.0f);
      for (int64_t e = 0; e < gs; e += 8) {
        d = g * gs + e;
        int32_t w; __builtin_memcpy(&w, pr + d / 2, 4);
        __m128i b4 = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(w));
        __m128i lo = _mm_and_si128(b4, m4), hi = _mm_srli_epi32(b4, 4);
        __m256i v = _mm256_set_m128i(_mm_unpackhi_epi32(lo, hi), _mm_unpacklo_epi32(lo, hi));
        __m256 x = _mm256_mul_ps(_mm256_add_ps(_mm256_cvtepi32_ps(v), vo), vs);
        if (br) x = _mm256_add_ps(x, vb);
        if (nt && aligned) _mm256_stream_ps(o + d, x); else _mm256_storeu_ps(o + d, x);
      }
    }
    return;
  }
#endif
  for (d = 0; d < D; ++d) {
    const uint8_t byte = pr[d >> 1];
    const float x = (float)((d & 1) ? (byte >> 4) : (byte & 15));
    const int64_t g = d / gs;
    o[d] = br ? (x + qoff) * sr[g] + br[g] : (x + qoff) * sr[g];
  }
}

static void* work_rows(void* arg) {
  const job_t* j = (const job_t*)arg;
  for (int64_t i = j->n0; i < j->n1; ++i) {
    const int64_t r = j->ids[i];
    const uint8_t* qr = j->q + r * j->row_bytes;
    const float* sr = j->S + r * j->G;
    const float* br = j->Bz ? j->Bz + r * j->G : 0;
    float* o = j->out + i * j->D;
    if (j->bits == 8) row_i8((const int8_t*)qr, sr, br, j->D, j->G, j->qoff, o, j->nt);
    else row_i4(qr, sr, br, j->D, j->G, j->qoff, o, j->nt);
  }
#ifdef __AVX2__
  _mm_sfence();
#endif
  return 0;
}

/* out[i, :] = dequantized row ids[i]; rows split evenly over nthreads pthreads (the caller's thread is one). */
int gather_dequant(const uint8_t* q, const float* S, const float* Bz, const int64_t* ids, int64_t n,
                   int64_t D, int64_t G, int64_t row_bytes, float qoff, int bits, float* out, int nt, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 64) nthreads = 64;
  if (n < 64 * nthreads) nthreads = 1;
  job_t jobs[64]; pthread_t th[64]; int ok[64];
  for (int t = 0; t < nthreads; ++t) {
    job_t jj = {q, S, Bz, ids, out, n * t / nthreads, n * (t + 1) / nthreads, D, G, row_bytes, qoff, bits, nt};
    jobs[t] = jj;
  }
  for (int t = 1; t < nthreads; ++t) ok[t] = pthread_create(&th[t], 0, work_rows, &jobs[t]) == 0;
  work_rows(&jobs[0]);
  for (int t = 1; t < nthreads; ++t) {
    if (ok[t]) pthread_join(th[t], 0);
    else work_rows(&jobs[t]);  /* a thread that failed to start: do its share here */
  }
  return 0;
}
"""

_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fPIC", "-shared", "-pthread", "-std=gnu99"]
_lock = threading.Lock()
_lib = None  # ctypes.CDLL once built, False once failed
_status = "not built"
#: outputs at least this big use non-temporal stores and huge pages (a few L2 caches' worth)
_BIG_BYTES = 8 << 20


#: prefix of :func:`kernel_status` when the fused kernel serves lookups
KERNEL_OK = "fused C kernel"


class _CacheRefused(OSError):
    """The kernel cache folder or file is not safe to load code from."""


def _kernel_dir() -> Path:
    """``$TOKEMBED_CACHE/kernels``: created with mode 0700; must be a real folder owned by this user."""
    d = tokembed_cache_dir() / "kernels"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(d)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise _CacheRefused(f"{d} is not a plain folder")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise _CacheRefused(f"{d} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)  # ours: close it to group and others
    return d


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_verified(so: Path):
    """Open ``so``, check owner and hash against ``so.sha256``, and load exactly the bytes that were hashed.

    Returns the CDLL, or None when the file is missing or its hash does not match (then it is rebuilt).
    """
    want_file = so.with_suffix(".sha256")
    try:
        fd = os.open(so, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
            raise _CacheRefused(f"{so} is not owned by you or is writable by others")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        try:
            want = want_file.read_text().strip()
        except FileNotFoundError:
            return None
        if _sha256(data) != want:
            return None
        proc = f"/proc/self/fd/{fd}"  # load the inode that was hashed, not whatever the path names now
        return ctypes.CDLL(proc if os.path.exists(proc) else str(so))
    finally:
        os.close(fd)


def _compile(cc: str, d: Path, so: Path) -> None:
    with tempfile.TemporaryDirectory(dir=d) as tmp:
        src = Path(tmp) / "k.c"
        src.write_text(_C_SOURCE)
        out = Path(tmp) / "k.so"
        subprocess.run([cc, *_FLAGS, str(src), "-o", str(out)], check=True, capture_output=True, timeout=120)
        os.chmod(out, 0o700)
        digest = Path(tmp) / "k.sha256"
        digest.write_text(_sha256(out.read_bytes()) + "\n")
        os.replace(out, so)  # atomic: concurrent builders race harmlessly
        os.replace(digest, so.with_suffix(".sha256"))


def _cpu_key() -> str:
    model = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    model += line
                    if line.startswith("flags"):
                        break
    except OSError:
        pass
    return model


def _build():
    global _status
    if os.environ.get("TOKEMBED_KERNELS", "1") == "0":
        _status = "disabled by TOKEMBED_KERNELS=0 (torch reference used)"
        return False
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    try:
        if not cc:
            raise _CacheRefused("no C compiler found; install gcc for the fused kernel")
        key = hashlib.sha256((_C_SOURCE + " ".join(_FLAGS) + cc + _cpu_key() + platform.machine()).encode()).hexdigest()[:16]
        d = _kernel_dir()
        so = d / f"gather_dequant_{key}.so"
        lib = _load_verified(so)
        if lib is None:  # absent, or its bytes differ from the recorded hash: build it (again)
            _compile(cc, d, so)
            lib = _load_verified(so)
            if lib is None:
                raise _CacheRefused(f"{so} changed between build and load")
        P, I = ctypes.c_void_p, ctypes.c_int64
        lib.gather_dequant.argtypes = [P, P, P, P, I, I, I, I, ctypes.c_float, ctypes.c_int, P, ctypes.c_int, ctypes.c_int]
        lib.gather_dequant.restype = ctypes.c_int
    except (OSError, subprocess.SubprocessError, AttributeError) as e:
        err = (getattr(e, "stderr", b"") or b"").decode(errors="replace").strip().replace("\n", " ")[:200]
        _status = f"kernel build failed ({e}{'; ' + err if err else ''}); torch reference used"
        warnings.warn(f"tokembed: the fused int8/int4 gather is not available: {_status}", RuntimeWarning, stacklevel=4)
        return False
    _status = f"{KERNEL_OK} ({so.name})"
    return lib


def _get_lib():
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib = _build()
    return _lib


def kernel_status() -> str:
    """Which path serves lookups: the fused C kernel, or the torch reference and why."""
    _get_lib()
    return _status


#: big output buffers kept for reuse (each is handed out again only when no tensor uses it any more)
_POOL_MAX = 2
_pool: list = []
_pool_lock = threading.Lock()


def alloc_output(n: int, d: int) -> torch.Tensor:
    """An uninitialised float32 (n, d) tensor; big ones on transparent huge pages (Linux), else ``torch.empty``.

    Page faults dominate a big lookup: a fresh 256 MiB output with 4 KiB pages costs more than the
    copy itself, and a fresh huge-page mapping can stall in the kernel (compaction). So big outputs
    come from a small pool of huge-page mappings that are reused once every tensor on them is gone.
    """
    nbytes = n * d * 4
    if nbytes < _BIG_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(n, d)
    with _pool_lock:
        for mm in _pool:
            # free = nothing but the pool references it: torch.frombuffer holds a buffer export (a reference)
            # for as long as any tensor or view on that storage lives. 3 = the pool's list + `mm` + the argument.
            if len(mm) >= nbytes and sys.getrefcount(mm) <= 3:
                return torch.frombuffer(mm, dtype=torch.float32, count=n * d).view(n, d)
        mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
        out = torch.frombuffer(mm, dtype=torch.float32).view(n, d)  # the tensor keeps the mapping alive
        _pool.append(mm)
        if len(_pool) > _POOL_MAX:
            _pool.pop(0)  # forgotten by the pool; unmapped when its last tensor dies
        return out


def _unpack_rows(q: torch.Tensor, bits: int, D: int) -> torch.Tensor:
    """(N, row_bytes) stored codes -> (N, D) float codes (int4: low nibble first)."""
    if bits == 8:
        return q.view(torch.int8).float()
    lo = (q & 15).float()
    hi = (q >> 4).float()
    return torch.stack([lo, hi], dim=-1).reshape(q.shape[0], -1)[:, :D]  # (N, 2*row_bytes) -> (N, D)


def _is_integer(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def check_gather(q, S, Bz, ids, *, D: int, bits: int) -> torch.Tensor:
    """The checks every entry point makes before a row is read; returns ids as a contiguous (N,) int64 tensor.

    Table: q (V, row_bytes) uint8 with row_bytes = D (int8) or ceil(D/2) (int4), S (V, G) float32 with
    G dividing D, Bz None or like S — else :class:`ConfigError`. Ids: integers in [0, V) — else
    :class:`TokenIdError` (the kernel would read outside the table).
    """
    if bits not in (8, 4):
        raise ConfigError(f"bits={bits} is not supported; choose bits=8 or bits=4")
    V = q.shape[0] if q.ndim == 2 else -1
    row_bytes = D if bits == 8 else (D + 1) // 2
    G = S.shape[1] if S.ndim == 2 else 0
    ok = (q.dtype == torch.uint8 and q.ndim == 2 and q.shape[1] == row_bytes and S.dtype == torch.float32
          and tuple(S.shape) == (V, G) and G >= 1 and D % G == 0
          and (Bz is None or (Bz.dtype == torch.float32 and tuple(Bz.shape) == (V, G))))
    if not ok:
        raise ConfigError(
            f"quantized table is inconsistent: codes {tuple(q.shape)} {q.dtype}, scales {tuple(S.shape)} {S.dtype}, "
            f"offsets {None if Bz is None else tuple(Bz.shape)}, D={D}, bits={bits}; expected codes (V, {row_bytes}) "
            f"uint8 and scales (V, G) float32 with G dividing {D}; build it with quantize()")
    if not isinstance(ids, torch.Tensor) or not _is_integer(ids.dtype) or ids.device.type != "cpu":
        check_ids(ids, V, where="quantized gather")  # the typed error for a non-tensor / non-integer dtype
        raise ConfigError(f"quantized gather: ids on {ids.device} must be on the CPU")
    ids = ids.reshape(-1).long().contiguous()
    a = ids.numpy()  # single-threaded min/max: a torch reduction can wait a whole time slice for a pool thread
    if a.size and (int(a.min()) < 0 or int(a.max()) >= V):
        check_ids(ids, V, where="quantized gather")  # raises TokenIdError naming the ids and their positions
    return ids


def _reference(q, S, Bz, ids, *, D: int, bits: int, qoff: float) -> torch.Tensor:
    G = S.shape[1]
    x = _unpack_rows(q[ids], bits, D)  # (N, D)
    x = (x + qoff).view(len(ids), G, D // G) * S[ids].unsqueeze(-1)  # (N, G, gs)
    if Bz is not None:
        x = x + Bz[ids].unsqueeze(-1)
    return x.reshape(len(ids), D)


def gather_dequant_reference(q, S, Bz, ids, *, D: int, bits: int, qoff: float) -> torch.Tensor:
    """Slow, readable reference: gather the stored rows, unpack, ``(q + qoff) * s (+ b)`` per group.

    q (V, row_bytes) uint8 view of the codes, S/Bz (V, G) float32, ids (N,) long -> (N, D) float32.
    """
    return _reference(q, S, Bz, check_gather(q, S, Bz, ids, D=D, bits=bits), D=D, bits=bits, qoff=qoff)


def gather_dequant(q, S, Bz, ids, *, D: int, bits: int, qoff: float, use_kernel: bool = True) -> torch.Tensor:
    """Fused gather + dequantize (C kernel when available; else the reference). ids (N,) long -> (N, D).

    The ids and the table are checked (:func:`check_gather`) before either path runs.
    """
    ids = check_gather(q, S, Bz, ids, D=D, bits=bits)
    lib = _get_lib() if use_kernel else False
    if not lib:
        return _reference(q, S, Bz, ids, D=D, bits=bits, qoff=qoff)
    n = ids.numel()
    out = alloc_output(n, D)
    if n == 0:
        return out
    q, S = q.contiguous(), S.contiguous()
    Bz = None if Bz is None else Bz.contiguous()
    big = n * D * 4 >= _BIG_BYTES
    lib.gather_dequant(
        q.data_ptr(), S.data_ptr(), None if Bz is None else Bz.data_ptr(), ids.data_ptr(), n, D, S.shape[1],
        q.shape[1], float(qoff), bits, out.data_ptr(), int(big), torch.get_num_threads(),
    )
    return out
