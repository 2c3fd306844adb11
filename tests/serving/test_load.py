"""The request loop of the load tests and benchmarks: every request recorded with its client, result or error, and
the summaries split by time windows."""

import itertools
import threading
import time

import numpy as np
import pytest

from serving import load


def test_every_request_is_recorded_and_a_failure_does_not_stop_its_client():
    counter, lock = itertools.count(), threading.Lock()

    def send():
        with lock:
            n = next(counter)
        time.sleep(0.002)
        if n % 5 == 4:
            raise RuntimeError(f'request {n} refused\nsecond line')
        return n

    with load.RequestLoop(send, clients=3) as loop:
        while len(loop.records) < 60:
            time.sleep(0.01)
    records = loop.records
    assert {r.client for r in records} == {0, 1, 2}
    assert [r.start for r in records] == sorted(r.start for r in records)
    failed = [r for r in records if r.error]
    assert failed and all(r.result is None and r.error.startswith('RuntimeError: request ') and
                          '\n' not in r.error for r in failed)
    assert sorted(r.result for r in records if r.error is None) == [n for n in range(len(records)) if n % 5 != 4]
    figures = load.summary(records)
    assert figures['requests'] == len(records) and figures['failures'] == len(failed)
    succeeded = [1000 * r.seconds for r in records if r.error is None]
    assert figures['p50_ms'] == pytest.approx(float(np.percentile(succeeded, 50)), abs=1e-3)
    assert figures['max_ms'] == pytest.approx(max(succeeded), abs=1e-3)


def test_spikes_split_the_requests_by_window():
    records = [load.Record(0, start, seconds) for start, seconds in
               ((0.0, 0.001), (1.0, 0.001), (2.0, 0.5), (2.5, 0.4), (4.0, 0.001))]
    figures = load.spikes(records, [(2.0, 3.0)])
    assert figures['during']['requests'] == 2 and figures['steady']['requests'] == 3
    assert figures['during']['p50_ms'] == pytest.approx(450.0) and figures['steady']['max_ms'] == pytest.approx(1.0)


def test_a_loop_needs_a_client():
    with pytest.raises(ValueError, match='clients'):
        load.RequestLoop(lambda: None, clients=0)
