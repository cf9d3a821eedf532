"""glibc malloc settings for tensor work: keep freed memory for reuse instead of giving it back
to the kernel after every batch.

Torch allocates CPU tensors with the C library's malloc. glibc serves blocks above its mmap
threshold (128 KB, raised on the fly up to 32 MB) with fresh ``mmap`` and shrinks a heap whose
free top exceeds the trim threshold, so a batch loop that frees and reallocates a few MB per
step pays a page fault for every 4 KB touched, every time. Measured on the two-stage image
pipeline (bench/agents_bench.py, 2 CPUs): 6,000-34,000 page faults and 7-100 ms of system time
per 512-image run, and the preprocess stage 15-20 % slower inside the engine than in a loop;
with the thresholds below, under 100 faults a run. The same reason PyTorch's CPU performance
guide suggests jemalloc or tcmalloc; this needs no extra library.

``tune_malloc`` (called when a ``RunManager`` starts) sets the mmap threshold to
``MMAP_THRESHOLD_MB`` and the trim threshold to ``TRIM_THRESHOLD_MB``: freed blocks up to that
much stay mapped for reuse. Process-wide and once; the cost is that the resident size drops
later after a peak. Set ``SERVICEGRID_MALLOC_TUNING=0`` to leave malloc as it is. A no-op
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

MMAP_THRESHOLD_MB = 32  # glibc's ceiling for this setting on 64-bit
TRIM_THRESHOLD_MB = 128
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
ENV = "SERVICEGRID_MALLOC_TUNING"

log = logging.getLogger(__name__)
_lock = threading.Lock()
_done: bool | None = None


def tune_malloc() -> bool:
    """Apply the thresholds once per process; True when they are in force."""
    global _done
    with _lock:
        if _done is None:
            _done = _apply()
        return _done


def _apply() -> bool:
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_MB * 2**20) == 1
          and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_MB * 2**20) == 1)
    if not ok:
        log.warning("malloc thresholds were not accepted; tensor memory is returned to the OS after each use")
    return ok
