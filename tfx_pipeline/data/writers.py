"""Writers of the synthetic log: TFRecord (tf.Example), CSV and metadata.json.

Layout under ``out_dir``::

    tfrecord/{train,eval,test}/part-00000.tfrecord   uncompressed tf.Example; every column a feature: int64_list or
                                                      float_list, scalars as 1-element lists, an empty history as
                                                      a present but empty list
    csv/{train,eval,test}/part-00000.csv             header row; a list as space-separated values, an empty list
                                                      as an empty field
    tfrecord/items/part-00000.tfrecord,              the item feed (:func:`synthetic.item_feed`): one row per item,
    csv/items/part-00000.csv                          the columns of ITEM_FEED_COLUMNS; not read by ExampleGen
    metadata.json                                     :func:`synthetic.summarize`, sorted keys, indent 2

Both encoders are vectorised NumPy over blocks of rows (:func:`serialize_examples`, :func:`csv_bytes`);
TensorFlow is imported only to frame TFRecords. Shards are written one after the other: on the 2-core machine
this was built on, writer threads (the GIL) and processes (pickling) were both slower than one process.
"""

import json
import math
import pathlib
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from tfx_pipeline.data import synthetic
from tfx_pipeline.data.synthetic import COLUMNS, FLOAT_COLUMNS, LIST_COLUMNS, SPLITS, Ragged

FORMATS = ('tfrecord', 'csv')
ROWS_PER_SHARD = 100_000     # the default shard size
ROWS_PER_BLOCK = 16_384      # rows encoded at a time (bounds the encoders' memory)


def write(dataset: synthetic.Dataset, out_dir, formats: Sequence[str] = FORMATS,
          num_shards: Optional[int] = None) -> dict:
    """Write every split of ``dataset`` in ``formats`` and ``metadata.json``; return the metadata.

    ``num_shards`` per split defaults to ⌈rows / ROWS_PER_SHARD⌉ (never more shards than rows). Shards of an
    earlier write to the same directories are removed first.
    """
    _Shards(out_dir, formats, num_shards).write(dataset.splits)
    if dataset.item_feed is not None:
        write_item_feed(dataset.item_feed, out_dir, formats)
    return _write_metadata(out_dir, dataset.metadata)


def generate_and_write(config: synthetic.GeneratorConfig, out_dir, formats: Sequence[str] = FORMATS,
                       num_shards: Optional[int] = None, progress: Optional[Callable[[int], None]] = None) -> dict:
    """Generate ``config`` chunk by chunk and write each chunk's shards as it comes (memory: one chunk);
    ``progress`` is called with the rows written so far after each chunk.

    ``num_shards`` applies to each chunk. For a config of one chunk (num_users ≤ users_per_chunk) the files equal
    those of ``write(generate(config))``.
    """
    shards = _Shards(out_dir, formats, num_shards)
    summaries, rows = [], 0
    for chunk in synthetic.generate_chunks(config):
        shards.write(chunk)
        summaries.append(synthetic.summary_columns(chunk))
        rows += sum(len(next(iter(split.values()))) for split in chunk.values())
        if progress is not None:
            progress(rows)
    write_item_feed(synthetic.item_feed(config), out_dir, formats)
    return _write_metadata(out_dir, synthetic.summarize(config, summaries))


def write_item_feed(feed: synthetic.Split, out_dir, formats: Sequence[str] = FORMATS) -> None:
    """The item feed in each format, one file ``<format>/items/part-00000.<format>`` (module docstring), by the
    log's encoders."""
    columns = synthetic.ITEM_FEED_COLUMNS
    for fmt in formats:
        path = pathlib.Path(out_dir) / fmt / synthetic.ITEMS / f'part-00000.{fmt}'
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == 'csv':
            path.write_bytes((','.join(columns) + '\n').encode() + csv_bytes(feed, columns))
        else:
            _write_tfrecord(path, [feed], columns)


def _write_metadata(out_dir, metadata: dict) -> dict:
    path = pathlib.Path(out_dir) / 'metadata.json'
    path.write_text(json.dumps(metadata, sort_keys=True, indent=2) + '\n')
    return metadata


class _Shards:
    """Cuts splits into shards, numbered on across calls of :meth:`write`."""

    def __init__(self, out_dir, formats: Sequence[str], num_shards: Optional[int]):
        unknown = set(formats) - set(FORMATS)
        if unknown or not formats:
            raise ValueError(f'formats must be a non-empty subset of {FORMATS}, got {tuple(formats)}')
        if num_shards is not None and num_shards < 1:
            raise ValueError(f'num_shards must be >= 1, got {num_shards}')
        self._out_dir, self._formats, self._num_shards = pathlib.Path(out_dir), tuple(formats), num_shards
        self._next = {name: 0 for name in SPLITS}
        for fmt in self._formats:
            for name in SPLITS:
                directory = self._out_dir / fmt / name
                directory.mkdir(parents=True, exist_ok=True)
                for stale in directory.glob(f'part-*.{fmt}'):
                    stale.unlink()

    def write(self, splits: Dict[str, synthetic.Split]) -> None:
        for paths, rows in self._shards(splits):
            _write_shard(paths, rows)

    def _shards(self, splits: Dict[str, synthetic.Split]) -> Iterator[tuple]:
        for name in SPLITS:
            rows = splits[name]['click'].size
            count = max(1, min(rows, self._num_shards or math.ceil(rows / ROWS_PER_SHARD)))
            bounds = np.linspace(0, rows, count + 1).round().astype(np.int64)
            for k in range(count):
                index = self._next[name]
                self._next[name] += 1
                paths = {fmt: self._out_dir / fmt / name / f'part-{index:05d}.{fmt}' for fmt in self._formats}
                yield paths, synthetic.take_rows(splits[name], bounds[k], bounds[k + 1])


def _write_shard(paths: Dict[str, pathlib.Path], split: synthetic.Split) -> None:
    """Write one shard's rows to each format's path."""
    rows = split['click'].size
    blocks = [synthetic.take_rows(split, begin, min(begin + ROWS_PER_BLOCK, rows))
              for begin in range(0, rows, ROWS_PER_BLOCK)]
    if 'tfrecord' in paths:
        _write_tfrecord(paths['tfrecord'], blocks)
    if 'csv' in paths:
        with open(paths['csv'], 'wb') as f:
            f.write((','.join(COLUMNS) + '\n').encode())
            for block in blocks:
                f.write(csv_bytes(block))


# ---------------------------------------------------------------------------------------------------------------
# TFRecord.


def _write_tfrecord(path, blocks: Sequence[synthetic.Split], columns: Sequence[str] = COLUMNS) -> None:
    """Frame each block's serialised tf.Examples as TFRecords (TensorFlow computes the CRCs)."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with tf.io.TFRecordWriter(str(path)) as writer:
        for block in blocks:
            buffer, offsets = serialize_examples(block, columns)
            data = buffer.tobytes()
            for begin, end in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
                writer.write(data[begin:end])


def serialize_examples(split: synthetic.Split, columns: Sequence[str] = COLUMNS
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """The rows of ``split`` (its ``columns``) as serialised tf.Examples, encoded column-wise in NumPy: ``(bytes,
    offsets)``, row r being ``bytes[offsets[r]:offsets[r + 1]]``.

    Wire format (protobuf; ⟨n⟩ is the varint of n, |x| the length of x)::

        Example  = 0x0A ⟨|Features|⟩ Features,     Features = Σ_columns 0x0A ⟨|Entry|⟩ Entry
        Entry    = 0x0A ⟨|name|⟩ name 0x12 ⟨|Feature|⟩ Feature
        Feature  = tag ⟨|List|⟩ List                (tag 0x1A int64_list, 0x12 float_list)
        List     = 0x0A ⟨|payload|⟩ payload, or nothing for an empty list (the feature is present but empty)
        payload  = the values' varints (int64) or little-endian float32s
    """
    rows = _rows(split, columns)
    encoded = [_EncodedColumn(name, split[name], rows) for name in columns]
    sizes = np.stack([c.entry_size + 1 + _varint_size(c.entry_size) for c in encoded], axis=1)
    features_size = sizes.sum(axis=1)
    row_size = 1 + _varint_size(features_size) + features_size
    offsets = np.r_[0, np.cumsum(row_size)]
    buffer = np.empty(int(offsets[-1]), dtype=np.uint8)
    buffer[offsets[:-1]] = 0x0A
    position = _put_varints(buffer, offsets[:-1] + 1, features_size)
    for column, size in zip(encoded, sizes.T):
        column.put(buffer, position)
        position = position + size
    return buffer, offsets


class _EncodedColumn:
    """Sizes and bytes of one column's map entries (see :func:`serialize_examples`)."""

    def __init__(self, name: str, column: synthetic.Column, rows: int):
        self.is_float = name in FLOAT_COLUMNS
        if isinstance(column, Ragged):
            self.values, self.lengths = column.values, column.row_lengths
        else:
            self.values, self.lengths = column, np.ones(rows, dtype=np.int64)
        self.key = np.frombuffer(bytes([0x0A, len(name)]) + name.encode() + b'\x12', dtype=np.uint8)
        if self.is_float:
            self.value_sizes = np.full(self.values.size, 4)
            self.payload_size = 4 * self.lengths
        else:
            self.value_sizes = _varint_size(self.values.astype(np.uint64))
            self.payload_size = np.bincount(np.repeat(np.arange(rows), self.lengths), self.value_sizes,
                                            minlength=rows).astype(np.int64)
        self.list_size = np.where(self.lengths > 0, 1 + _varint_size(self.payload_size) + self.payload_size, 0)
        self.feature_size = 1 + _varint_size(self.list_size) + self.list_size
        self.entry_size = self.key.size + _varint_size(self.feature_size) + self.feature_size

    def put(self, buffer: np.ndarray, position: np.ndarray) -> None:
        """Write ``0x0A ⟨|Entry|⟩ Entry`` of every row, row r starting at ``position[r]``."""
        buffer[position] = 0x0A
        position = _put_varints(buffer, position + 1, self.entry_size)
        buffer[position[:, None] + np.arange(self.key.size)] = self.key
        position = _put_varints(buffer, position + self.key.size, self.feature_size)
        buffer[position] = 0x12 if self.is_float else 0x1A
        position = _put_varints(buffer, position + 1, self.list_size)
        listed = self.lengths > 0
        buffer[position[listed]] = 0x0A
        position[listed] = _put_varints(buffer, position[listed] + 1, self.payload_size[listed])
        value_position = (np.repeat(position, self.lengths) + np.cumsum(self.value_sizes) - self.value_sizes
                          - np.repeat(np.cumsum(self.payload_size) - self.payload_size, self.lengths))
        if self.is_float:
            float_bytes = np.ascontiguousarray(self.values, dtype='<f4').view(np.uint8).reshape(-1, 4)
            buffer[value_position[:, None] + np.arange(4)] = float_bytes
        else:
            _put_varints(buffer, value_position, self.values, self.value_sizes)


def _varint_size(values: np.ndarray) -> np.ndarray:
    """Bytes of the varint of each value: 1 + #{k ≥ 1 : v ≥ 2^(7k)} (an int64 is encoded as its two's complement
    uint64)."""
    values = np.asarray(values).astype(np.uint64)
    sizes = np.ones(values.shape, dtype=np.int64)
    largest = int(values.max(initial=0))
    for k in range(1, 10):
        if largest < 1 << (7 * k):
            break
        sizes += values >= np.uint64(1 << (7 * k))
    return sizes


def _put_varints(buffer: np.ndarray, position: np.ndarray, values: np.ndarray,
                 sizes: Optional[np.ndarray] = None) -> np.ndarray:
    """Write each value's varint (7 bits a byte, low first, high bit = more follow) at ``position``; return the
    positions just after them. ``sizes``: the values' varint sizes, if already known."""
    values = np.asarray(values).astype(np.uint64)
    sizes = _varint_size(values) if sizes is None else sizes
    for k in range(int(sizes.max(initial=0))):
        byte = ((values >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        byte |= (sizes > k + 1).astype(np.uint8) << 7
        if sizes.min() > k:
            buffer[position + k] = byte
        else:
            at = np.flatnonzero(sizes > k)
            buffer[position[at] + k] = byte[at]
    return position + sizes


# ---------------------------------------------------------------------------------------------------------------
# CSV, vectorised: every value becomes a fixed-width token of bytes, NUL-padded, followed by its separator; the
# tokens are laid out row by row in one matrix and the file is that matrix without its NUL bytes. Tokens are
# handled as uint32 words (4 bytes) to keep the copies short.

_FLOAT_WORDS = 4   # 16 bytes: a float32 repr has at most 15 ('-1.2345679e-38')


def _digit_words(padded: bool) -> np.ndarray:
    """Word k: the 4 ASCII digits of k, zero-padded ('0042') or NUL-padded ('\0\042', 0 → four NULs)."""
    text = [f'{k:04d}' if padded else (f'{k}' if k else '').rjust(4, '\0') for k in range(10_000)]
    return np.frombuffer(''.join(text).encode(), dtype=np.uint32)


_DIGIT_WORDS = np.concatenate([_digit_words(False), _digit_words(True)])  # index: k + 10000 · (padded)
_ZERO_WORD = np.frombuffer(b'\0\0\0' b'0', dtype=np.uint32)[0]
_SPACE_WORD = np.frombuffer(b' \0\0\0', dtype=np.uint32)[0]


def csv_bytes(split: synthetic.Split, columns: Sequence[str] = COLUMNS) -> bytes:
    """CSV lines (no header) of the rows of ``split``, its ``columns`` in that order.

    A list's values are separated by ' ', fields by ',', rows end with '\n'; an empty list is an empty token.
    """
    rows = _rows(split, columns)
    counts = np.stack([_token_counts(split[name], rows) for name in columns], axis=1)
    row_starts = np.cumsum(counts.sum(axis=1)) - counts.sum(axis=1)
    starts = np.cumsum(counts, axis=1) - counts + row_starts[:, None]
    words = [_float_words(_values(split[name])) if name in FLOAT_COLUMNS else _int_words(_values(split[name]))
             for name in columns]
    tokens = np.zeros((int(counts.sum()), max(w.shape[1] for w in words)), dtype=np.uint32)
    for k, name in enumerate(columns):
        column = split[name]
        index = synthetic.ragged_arange(starts[:, k], column.row_lengths) if name in LIST_COLUMNS else starts[:, k]
        tokens[index, :words[k].shape[1]] = words[k]
        separator = ord(',') if k < len(columns) - 1 else ord('\n')
        tokens.view(np.uint8)[starts[:, k] + counts[:, k] - 1, 4 * words[k].shape[1] - 4] = separator
    text = tokens.view(np.uint8)
    return text[text != 0].tobytes()


def _rows(split: synthetic.Split, columns: Sequence[str]) -> int:
    column = split[columns[0]]
    return len(column.row_lengths) if isinstance(column, Ragged) else len(column)


def _values(column: synthetic.Column) -> np.ndarray:
    return column.values if isinstance(column, Ragged) else column


def _token_counts(column: synthetic.Column, rows: int) -> np.ndarray:
    """Tokens per row: 1 for a scalar, max(1, length) for a list (an empty list is one empty token)."""
    if isinstance(column, Ragged):
        return np.maximum(column.row_lengths, 1)
    return np.ones(rows, dtype=np.int64)


def _int_words(values: np.ndarray) -> np.ndarray:
    """``[n, groups + 1]`` words: the decimal digits of non-negative integers in groups of 4, most significant
    first, without leading zeros (NUL instead), then a ' ' word."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and values.min() < 0:
        raise ValueError('the CSV writer expects non-negative integers')
    groups = max(1, math.ceil(len(str(int(values.max(initial=0)))) / 4))
    words = np.empty((values.size, groups + 1), dtype=np.uint32)
    words[:, groups] = _SPACE_WORD
    rest = values
    for g in range(groups - 1, -1, -1):
        rest, low = np.divmod(rest, 10_000)
        words[:, g] = _DIGIT_WORDS[low + 10_000 * (rest > 0)]
    words[values == 0, groups - 1] = _ZERO_WORD
    return words


def _float_words(values: np.ndarray) -> np.ndarray:
    """``[n, 5]`` words: the shortest round-trip repr of float32 values, NUL-padded, then a ' ' word."""
    text = np.asarray(values, dtype=np.float32).astype(f'S{4 * _FLOAT_WORDS}').view(np.uint32)
    return np.c_[text.reshape(-1, _FLOAT_WORDS), np.full(len(values), _SPACE_WORD, dtype=np.uint32)]
