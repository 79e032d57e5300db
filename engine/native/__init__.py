"""Build, cache and load the C sources of the engine's CPU paths.

A source is compiled with the system C compiler (gcc; about a second) on first use, into a
cache directory keyed by a hash of the source, the headers beside this module, the compiler,
the flags and the CPU, then loaded with ctypes (which releases the GIL during each call).
Libraries link the libgomp that ships inside torch, so they and torch's own ops share one
OpenMP thread pool. Sources may include the headers here (vec8.h: 8-lane float vectors).

Environment: PROTOSERVE_KERNEL_CACHE (the cache directory; default
$XDG_CACHE_HOME/protoserve/kernels or ~/.cache/protoserve/kernels) and PROTOSERVE_CC (the
compiler; default gcc). Each source is built at most once per process; `load_library`
raises KernelBuildError when it cannot build or load, and callers fall back to torch ops."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import structlog
import torch

HEADERS = Path(__file__).parent
# -ffast-math's parts, not the flag itself: with it (or -funsafe-math-optimizations) GCC
# before 13 links crtfastmath.o into the library, whose constructor turns on
# flush-to-zero / denormals-are-zero for the whole process once loaded (numpy and torch
# then lose IEEE subnormals; hypothesis refuses to run).
FAST_MATH = ("-fno-math-errno", "-ffinite-math-only", "-fno-signed-zeros", "-fno-trapping-math",
             "-fassociative-math", "-freciprocal-math", "-fno-rounding-math",
             "-fno-signaling-nans", "-fcx-limited-range", "-fexcess-precision=fast")  # fmt: skip
FLAGS = ("-O3", "-march=native", *FAST_MATH, "-fopenmp", "-fPIC", "-shared", "-std=gnu11",
         f"-I{HEADERS}")  # fmt: skip
CACHE_ENV = "PROTOSERVE_KERNEL_CACHE"
CC_ENV = "PROTOSERVE_CC"
_BUILD_TIMEOUT_S = 120
_LOCK = threading.Lock()
log = structlog.get_logger(__name__)


class KernelBuildError(RuntimeError):
    """A C source could not be compiled or loaded on this machine."""


def load_library(source: Path) -> ctypes.CDLL:
    """The loaded library of one C source (built on first use, once per process,
    thread-safe)."""
    with _LOCK:
        outcome = _build_and_load(source)
    if isinstance(outcome, KernelBuildError):
        raise KernelBuildError(str(outcome))  # a fresh one per caller: no shared traceback
    return outcome


@functools.cache
def _build_and_load(source: Path) -> ctypes.CDLL | KernelBuildError:
    """Called under _LOCK; caches failures too, so a broken toolchain is tried once."""
    try:
        return ctypes.CDLL(str(_library_path(source)))
    except (OSError, subprocess.SubprocessError, KernelBuildError) as exc:
        return exc if isinstance(exc, KernelBuildError) else KernelBuildError(str(exc))


def _library_path(source: Path) -> Path:
    """The cached shared library for this source, compiler, flags and CPU; built if absent."""
    compiler = os.environ.get(CC_ENV, "gcc")
    link = _openmp_link_args()
    key = hashlib.sha256()
    headers = [h.read_bytes() for h in sorted(HEADERS.glob("*.h"))]
    for part in (source.read_bytes(), *headers, compiler.encode(),
                 *map(str.encode, FLAGS + link), _cpu_id()):  # fmt: skip
        key.update(part + b"\0")
    target = _cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        _compile(compiler, link, source, target)
    return target


def _compile(compiler: str, link: tuple[str, ...], source: Path, target: Path) -> None:
    """Compile to a temporary file beside the target, then rename: other processes never
    see a half-written library."""
    if shutil.which(compiler) is None:
        raise KernelBuildError(f"C compiler {compiler!r} not found (set {CC_ENV})")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    command = [compiler, *FLAGS, "-o", tmp, str(source), *link]
    begin = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
        if result.returncode != 0:
            raise KernelBuildError(f"{' '.join(command)} failed:\n{result.stderr.strip()}")
        os.replace(tmp, target)
        _remove_stale(target, source)
        log.info("built cpu library", path=str(target),
                 seconds=round(time.perf_counter() - begin, 2))  # fmt: skip
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _remove_stale(current: Path, source: Path) -> None:
    """Earlier builds of the same source (older versions or flags) in the directory."""
    for stale in current.parent.glob(f"{source.stem}-*.so"):
        if stale != current:
            stale.unlink(missing_ok=True)  # a process that mapped it keeps its mapping


def _openmp_link_args() -> tuple[str, ...]:
    """Link torch's bundled libgomp when there is one (one OpenMP runtime in the process);
    else the compiler's own. --as-needed keeps the compiler's -lgomp from being recorded."""
    lib_dir = Path(torch.__file__).parent / "lib"
    bundled = sorted(lib_dir.glob("libgomp*.so*"))
    if not bundled:
        return ("-lm",)
    return ("-Wl,--as-needed", str(bundled[0]), f"-Wl,-rpath,{lib_dir}", "-lm")


def _cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "protoserve" / "kernels"


def _cpu_id() -> bytes:
    """What -march=native depends on: the machine and its CPU feature flags."""
    flags = b""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            flags = next((line for line in f if line.startswith(b"flags")), b"")
    except OSError:
        pass
    return platform.machine().encode() + b"|" + flags
