"""The order records flow in: training reads them (tfx_pipeline/trainer.py, ``canonical_records``) in an order fixed
by their bytes, whatever files and order upstream components wrote them in, or as written when switched off or over
the size limit; the local runner seeds the random draws of ExampleGen's shuffle (tfx_pipeline/runners.py)."""

import random

import numpy as np
import tensorflow as tf
from tfx import v1 as tfx

from tfx_pipeline import runners
from tfx_pipeline import trainer

RECORDS = [f'record {i:04d}'.encode() for i in range(600)] + [b'record 0007']   # one record twice


def _write(directory, name, parts):
    paths = []
    for index, part in enumerate(parts):
        path = str(directory / f'{name}-{index}.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for record in part:
                writer.write(record)
        paths.append(path)
    return paths


def _read(files, canonical_order_mb):
    return list(trainer.canonical_records(files, canonical_order_mb).as_numpy_iterator())


def _layouts(tmp_path, records):
    """The same records as two files in order and as three files of a permutation."""
    shuffled = [records[i] for i in np.random.default_rng(0).permutation(len(records))]
    return (_write(tmp_path, 'a', [records[:250], records[250:]]),
            _write(tmp_path, 'b', [shuffled[:100], shuffled[100:400], shuffled[400:]]))


def test_the_order_depends_on_the_records_only(tmp_path):
    in_order, permuted = _layouts(tmp_path, RECORDS)
    first = _read(in_order, 512)
    assert first == _read(permuted, 512)
    assert sorted(first) == sorted(RECORDS)
    positions = [RECORDS.index(r) for r in first]
    assert abs(np.corrcoef(positions, np.arange(len(positions)))[0, 1]) < 0.2   # not the written order


def test_several_buckets_give_one_order_too(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, 'CANONICAL_BUCKET_BYTES', 1024)   # the files: several kB, so several buckets
    in_order, permuted = _layouts(tmp_path, RECORDS)
    first = _read(in_order, 512)
    assert first == _read(permuted, 512) and sorted(first) == sorted(RECORDS)


def test_switched_off_or_over_the_limit_the_files_are_read_as_written(tmp_path):
    in_order, _ = _layouts(tmp_path, RECORDS)
    assert _read(in_order, 0) == RECORDS
    noise = [np.random.default_rng(i).bytes(1200) for i in range(1000)]   # 1.2 MB that gzip cannot shrink
    big = _write(tmp_path, 'big', [noise])
    assert _read(big, 1) == noise
    assert _read(big, 2) != noise and sorted(_read(big, 2)) == sorted(noise)


def test_the_local_runner_seeds_the_random_draws_of_examplegens_shuffle(monkeypatch):
    drawn = []
    monkeypatch.setattr(tfx.orchestration.LocalDagRunner, 'run',
                        lambda self, pipeline: drawn.append(random.getrandbits(64)))
    for state in (1, 2):
        random.seed(state)   # whatever ran before
        runners.run(None, 'local', seed=7)
    runners.run(None, 'local', seed=8)
    assert drawn[0] == drawn[1] != drawn[2]
