"""Server-side batching of concurrent requests (off by default; ``--enable_batching``).

Requests for the same loaded version and signature whose inputs all have a leading batch dimension are queued
together; a worker thread takes up to ``max_batch_size`` rows from a queue when the queue holds that many rows or
its oldest request has waited ``batch_timeout_micros``, concatenates the inputs, runs the signature once and
splits the outputs back by rows. This is the scheme of TF Serving's shared batch scheduler: with the default
timeout of 0 a batch forms from whatever queued up while the workers were busy.

Differences from TF Serving, on purpose: a signature with an input that is not batch-major (e.g. ``rank``, whose
``context`` is a scalar) bypasses batching instead of failing; so does a request larger than ``max_batch_size``
(TF Serving refuses it unless large-batch splitting is on) or one whose inputs disagree on the number of rows;
requests whose inputs differ in the non-batch dimensions go to separate batches instead of being padded; and a
batch that fails is retried request by request, so one malformed request fails alone.

The installed ``tensorflow-serving-api`` has no ``BatchingParameters`` proto (it lives in TF Serving's
``session_bundle_config.proto``, which the pip package does not ship), so ``--batching_parameters_file`` cannot be
read; the parameters come from the flags ``--max_batch_size``, ``--batch_timeout_micros`` and
``--num_batch_threads`` instead (see :class:`BatchingOptions`).
"""

import collections
import dataclasses
import os
import threading
import time
from typing import Callable, Deque, Dict, Hashable, List, Mapping, Optional

import numpy as np
import tensorflow as tf

from serving import errors

Arrays = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """Batching parameters, named as TF Serving's ``BatchingParameters`` fields.

    Attributes:
        max_batch_size: most rows in one batch (TF Serving's default when no parameters file is given: 1000).
        batch_timeout_micros: longest wait of a queued request for more rows before its batch runs.
        num_batch_threads: worker threads running batches.
    """
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = os.cpu_count() or 1

    def validate(self) -> 'BatchingOptions':
        """Returns self; raises ValueError naming the flag of a value out of range."""
        if self.max_batch_size < 1:
            raise ValueError(f'--max_batch_size must be >= 1, got {self.max_batch_size}')
        if self.batch_timeout_micros < 0:
            raise ValueError(f'--batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}')
        if self.num_batch_threads < 1:
            raise ValueError(f'--num_batch_threads must be >= 1, got {self.num_batch_threads}')
        return self


def batchable(specs: Mapping[str, tf.TensorSpec]) -> bool:
    """Whether every input of a signature is batch-major: known rank >= 1 and an unknown leading dimension."""
    return bool(specs) and all(spec.shape.rank and spec.shape[0] is None for spec in specs.values())


class _Task:
    """One queued request."""

    def __init__(self, run: Callable[[Arrays], Arrays], inputs: Arrays, rows: int):
        self.run = run
        self.inputs = inputs
        self.rows = rows
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.outputs: Arrays = {}
        self.error: Optional[BaseException] = None


class Batcher:
    """Queues requests by key and runs them in batches on ``num_batch_threads`` worker threads.

    Args:
        options: the batching parameters.
    """

    def __init__(self, options: BatchingOptions):
        self.options = options.validate()
        self._timeout = options.batch_timeout_micros / 1e6
        self._condition = threading.Condition()
        self._queues: Dict[Hashable, Deque[_Task]] = {}
        self._batch_sizes: collections.Counter = collections.Counter()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f'batching-{i}', daemon=True)
                         for i in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def run(self, key: Hashable, run: Callable[[Arrays], Arrays], inputs: Arrays) -> Arrays:
        """Runs ``run(inputs)``, batched with other requests of the same ``key`` when the inputs allow it.

        ``run`` must accept inputs concatenated along the first dimension and return outputs whose first dimension
        is the number of rows; requests of one key must be interchangeable (same version and signature).
        """
        rows = {array.shape[0] if array.ndim else -1 for array in inputs.values()}
        if len(rows) != 1 or not 0 < min(rows) <= self.options.max_batch_size:
            return run(inputs)
        task = _Task(run, inputs, rows.pop())
        shapes = tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(inputs.items()))
        with self._condition:
            if self._stopping:
                return run(inputs)
            self._queues.setdefault((key, shapes), collections.deque()).append(task)
            self._condition.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def batch_sizes(self) -> Dict[int, int]:
        """How many batches ran with each number of requests so far."""
        with self._condition:
            return dict(self._batch_sizes)

    def stop(self, timeout: float = 10.0) -> None:
        """Runs what is queued, then stops the workers; later requests run unbatched."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._condition:
                batch = self._next_batch()
                while batch is None:
                    if self._stopping:
                        return
                    self._condition.wait(self._wait_seconds())
                    batch = self._next_batch()
                self._batch_sizes[len(batch)] += 1
            self._run_batch(batch)

    def _next_batch(self) -> Optional[List[_Task]]:
        """Takes the next batch that is full or timed out (everything while stopping); None if there is none."""
        now = time.monotonic()
        for key, queue in self._queues.items():
            if (self._stopping or now - queue[0].enqueued >= self._timeout
                    or sum(task.rows for task in queue) >= self.options.max_batch_size):
                batch, rows = [], 0
                while queue and rows + queue[0].rows <= self.options.max_batch_size:
                    rows += queue[0].rows
                    batch.append(queue.popleft())
                if not queue:
                    del self._queues[key]
                return batch
        return None

    def _wait_seconds(self) -> Optional[float]:
        if not self._queues:
            return None
        oldest = min(queue[0].enqueued for queue in self._queues.values())
        return max(oldest + self._timeout - time.monotonic(), 0.0)

    @staticmethod
    def _run_batch(batch: List[_Task]) -> None:
        try:
            if len(batch) > 1:
                try:
                    _run_together(batch)
                    return
                except Exception:  # pylint: disable=broad-except  (retried one by one: a bad request fails alone)
                    pass
            for task in batch:
                try:
                    task.outputs = task.run(task.inputs)
                except Exception as e:  # pylint: disable=broad-except  (handed to the waiting request)
                    task.error = e
        finally:
            for task in batch:
                task.done.set()


def _run_together(batch: List[_Task]) -> None:
    inputs = {name: np.concatenate([task.inputs[name] for task in batch]) for name in batch[0].inputs}
    outputs = batch[0].run(inputs)
    total = sum(task.rows for task in batch)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise errors.internal(f'batched output {name!r} has shape {list(array.shape)}, expected {total} rows')
    offsets = np.cumsum([task.rows for task in batch])[:-1]
    for name, array in outputs.items():
        for task, part in zip(batch, np.split(array, offsets)):
            task.outputs[name] = part
