"""Peak memory of a block of ``bench_train.py``: the CUDA allocator's peak on a GPU, the sampled resident set size
above the starting one on the CPU (see ``bench_train.py``'s doc for the glibc setting that makes it honest)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


def _rss_bytes() -> int:
    """Resident set size now: read from ``/proc`` (cheap enough to sample every 2 ms on another thread)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class PeakMemory:
    """Peak memory of a block: CUDA allocator peak on a GPU, sampled RSS above the starting RSS on CPU."""

    device: torch.device
    interval_s: float = 0.002
    peak_bytes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            yield self
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - start
            return
        start = _rss_bytes()
        peak = [start]
        self._stop.clear()

        def sample() -> None:
            while not self._stop.is_set():
                peak[0] = max(peak[0], _rss_bytes())
                time.sleep(self.interval_s)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak_bytes = max(peak[0], _rss_bytes()) - start
