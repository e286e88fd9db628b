"""Measurement helpers shared by the benchmark scripts (Linux: reads /proc)."""

from __future__ import annotations

import threading
import time

__all__ = ["PeakRSS", "rss_bytes"]


def rss_bytes() -> int:
    """Current resident set size of this process (bytes)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Context manager sampling the resident set size in a thread while the block runs.

    Attributes ``start`` and ``peak`` (bytes) are set; ``added`` is ``peak - start``.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval

    def __enter__(self) -> PeakRSS:
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def added(self) -> int:
        """Peak minus the resident size at the start (bytes)."""
        return self.peak - self.start
