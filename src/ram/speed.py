"""Process-level settings that make CPU training faster without changing any number it computes."""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_tuned = False


def tune_malloc(threshold: int = 1 << 28) -> bool:
    """Keep freed tensor memory in the glibc heap instead of returning it to the kernel.

    A RAM step frees and reallocates the same few MB of activations every step. With glibc's default thresholds
    large blocks go back to the kernel and come back as fresh pages, costing ~1000 page faults and ~2 ms of system
    time per step at batch 128 (measured on the mnist preset). Returns True if the setting was applied (glibc only).
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        _tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, threshold))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    return _tuned
