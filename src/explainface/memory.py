"""Peak-memory measurement for benchmarks and tests (CPU and CUDA).

On CUDA it uses the caching allocator's peak counters. On Linux CPUs it resets
the process's resident-set high-water mark (writing "5" to
``/proc/self/clear_refs``) and reads ``VmHWM``, so the figure is the peak
*extra* resident memory of the block, whatever the process held before.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass
class PeakMemory:
    """Result of `peak_memory`: extra peak bytes of the block, and whether the figure is exact."""

    device: str
    peak_bytes: int = 0
    exact: bool = True

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


@contextlib.contextmanager
def peak_memory(device: str | torch.device = "cpu") -> Iterator[PeakMemory]:
    """Measure the peak memory a block adds: ``with peak_memory() as m: ...; m.peak_mib``.

    CPU: exact on Linux (resettable high-water mark); elsewhere it falls back to
    the process's lifetime peak (``exact=False``, an upper bound).
    """
    dev = torch.device(device)
    result = PeakMemory(device=str(dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        yield result
        torch.cuda.synchronize(dev)
        result.peak_bytes = torch.cuda.max_memory_allocated(dev) - base
        return
    rss = _status_kib("VmRSS")
    if rss is not None and _reset_hwm():
        yield result
        hwm = _status_kib("VmHWM") or rss
        result.peak_bytes = max(0, hwm - rss) * 1024
        return
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield result
    result.exact = False
    result.peak_bytes = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024


def available_bytes(device: str = "cpu") -> int | None:
    """Memory a new allocation can use now: the CUDA device's free memory, or the system's MemAvailable (Linux);
    None where it cannot be told."""
    if str(device).startswith("cuda"):
        import torch

        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except (RuntimeError, AssertionError):
            return None
    kib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                kib = int(line.split()[1])
                break
    except (OSError, ValueError):
        return None
    return None if kib is None else kib * 1024
