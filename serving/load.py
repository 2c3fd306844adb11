"""A steady request loop for load tests and latency benchmarks: client threads sending requests back to back.

    loop = RequestLoop(lambda: stub.Predict(request, timeout=10).model_spec.version.value, clients=4)
    with loop:
        time.sleep(60)                      # push versions, delete one, send SIGTERM, … meanwhile
    summary(loop.records), spikes(loop.records, windows=[(15.0, 32.0)])   # e.g. a push until the swap

Each request's start (seconds since the loop started), latency, the value ``send`` returned (the version that
answered, say) and its error (``None``, or the exception's one-line description) are recorded; a failed request
does not stop its client. Times are measured with ``time.perf_counter``.
"""

import dataclasses
import threading
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Record:
    client: int
    start: float                  # seconds since the loop started
    seconds: float                # latency
    result: object = None         # what ``send`` returned
    error: Optional[str] = None   # None when the request succeeded


class RequestLoop:
    """``clients`` threads each calling ``send()`` back to back (or ``pause_s`` apart: a steady load below
    saturation) until :meth:`stop` (or the ``with`` block ends)."""

    def __init__(self, send: Callable[[], object], clients: int, pause_s: float = 0.0):
        if clients < 1:
            raise ValueError(f'clients must be >= 1, got {clients}')
        self._send, self._clients, self._pause = send, clients, pause_s
        self._stop = threading.Event()
        self._records: List[List[Record]] = [[] for _ in range(clients)]
        self._threads: List[threading.Thread] = []
        self.started = 0.0

    def start(self) -> 'RequestLoop':
        self.started = time.perf_counter()
        self._threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(self._clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> List[Record]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.records

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self.started

    @property
    def records(self) -> List[Record]:
        """Every request so far, by start time."""
        return sorted((r for own in self._records for r in list(own)), key=lambda r: r.start)

    def __enter__(self) -> 'RequestLoop':
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False

    def _run(self, client: int) -> None:
        own = self._records[client]
        while not self._stop.is_set():
            start = time.perf_counter()
            result, error = None, None
            try:
                result = self._send()
            except Exception as e:  # pylint: disable=broad-except  (recorded: a load test counts failures)
                error = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
            own.append(Record(client, start - self.started, time.perf_counter() - start, result, error))
            if self._pause:
                self._stop.wait(self._pause)


def summary(records: Sequence[Record], seconds: Optional[float] = None) -> dict:
    """Requests, failures, QPS (over ``seconds``, default the records' span) and latency percentiles (ms) of the
    successful requests."""
    latencies = 1000 * np.array([r.seconds for r in records if r.error is None])
    span = seconds if seconds is not None else (
        max(r.start + r.seconds for r in records) - min(r.start for r in records) if records else 0.0)
    result = {'requests': len(records), 'failures': sum(r.error is not None for r in records),
              'qps': round(len(records) / span, 1) if span > 0 else None}
    for q in (50, 95, 99):
        result[f'p{q}_ms'] = round(float(np.percentile(latencies, q)), 3) if latencies.size else None
    result['max_ms'] = round(float(latencies.max()), 3) if latencies.size else None
    return result


def spikes(records: Sequence[Record], windows: Iterable[Tuple[float, float]]) -> dict:
    """Latency during events (a version loading after a push, a deletion): the figures of :func:`summary` for the
    requests started within any ``(start, end)`` window (seconds since the loop started) against the others'."""
    windows = sorted(windows)

    def during(record):
        return any(start <= record.start <= end for start, end in windows)

    return {'windows': [[round(a, 2), round(b, 2)] for a, b in windows],
            'during': summary([r for r in records if during(r)]),
            'steady': summary([r for r in records if not during(r)])}
