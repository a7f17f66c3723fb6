"""CPU training speed: process-level settings that make it faster without changing any number it computes, and a
warning for a precision the CPU can only emulate."""

from __future__ import annotations

import ctypes
import sys
import warnings

import torch

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


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls run on this device's own instructions. A CPU without them (AVX2 only, no AVX-512 or
    AMX) emulates bf16, many times slower than fp32 (results/NOTES.md measures it)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: nothing to say
        return True


FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
"""The CPU flags that set how fast this project trains: AVX2 (fp32 only), AVX-512, and native bfloat16 (AVX512-BF16,
AMX)."""


def machine(device: torch.device) -> dict:
    """What a run trained on, for its results: the CPU's model name and which of FLAGS it has (from /proc/cpuinfo on
    Linux; empty elsewhere), torch's threads, and the device."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"cpu": name, "cpu_flags": [f for f in FLAGS if f in flags], "threads": torch.get_num_threads(),
            "device": str(device)}


def resolve_precision(precision: str, device: torch.device) -> str:
    """The arithmetic `precision` names on `device`: "auto" is bf16 where the device computes it natively, else
    fp32; an explicit fp32 or bf16 stays what it is."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def check_precision(precision: str, device: torch.device) -> None:
    """Warn, before any work starts, when a run asks for bf16 on a CPU that would only emulate it."""
    if precision == "bf16" and not native_bf16(device):
        warnings.warn(
            f"precision = 'bf16': this CPU has no native bfloat16 ({torch.backends.cpu.get_cpu_capability()}), so "
            "bf16 is emulated and trains many times slower than fp32; pass --precision fp32 for speed (numbers "
            "differ slightly from a bf16 run's)", RuntimeWarning, stacklevel=2)
