"""What the importers share: input errors, split assignment, the TFRecord split writer, spec and metadata files.

Output layout under ``out`` (the layout of :mod:`tfx_pipeline.data`, so a pipeline config points ``data.path`` at
``out`` and ``feature_spec`` at ``out/feature_spec.yaml``)::

    tfrecord/{train,eval,test}/part-00000.tfrecord   uncompressed tf.Example, one feature per column, scalars as
                                                      1-element int64/float/bytes lists
    feature_spec.yaml                                 the feature spec of the imported columns
    metadata.json                                     format, source file, rows and CTR per split, the choices made

Every importer reads its input twice, line by line (memory does not grow with the file): a first pass checks
every line and counts them (so a malformed line is reported before anything is written), a second pass writes
each row to its split. Files ending in ``.gz`` are read through gzip.
"""

import gzip
import json
import pathlib
import struct
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
import yaml

SPLITS = ('train', 'eval', 'test')
SPEC_FILE = 'feature_spec.yaml'
METADATA_FILE = 'metadata.json'
BY_ORDER = 'order'
RANDOM = 'random'
SPLIT_METHODS = (BY_ORDER, RANDOM)


class InputError(ValueError):
    """A line of the input that cannot be imported; the message names the file, the line and the column."""

    def __init__(self, path: str, line: int, column: Optional[str], message: str):
        where = f'{path}:{line}' + (f': column {column}' if column else '')
        super().__init__(f'{where}: {message}')
        self.path, self.line, self.column = path, line, column


def parse_fractions(text: str) -> Tuple[float, float, float]:
    """``'0.8,0.1,0.1'`` → train, eval and test fractions: three positive numbers summing to 1."""
    try:
        fractions = tuple(float(part) for part in text.split(','))
    except ValueError:
        raise ValueError(f'{text!r} is not three comma-separated numbers') from None
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f'{text!r}: give three positive fractions (train,eval,test) that sum to 1')
    return fractions


def split_sizes(rows: int, fractions: Sequence[float], path: str) -> Tuple[int, int, int]:
    """Rows of each split: the boundaries are ``round(rows · cumulative fraction)``; every split needs a row."""
    bounds = [0] + [int(round(rows * f)) for f in np.cumsum(fractions)[:-1]] + [rows]
    sizes = tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    if min(sizes) < 1:
        raise ValueError(f'{path}: {rows} rows are too few for splits {tuple(fractions)} (sizes {sizes}): every '
                         'split needs at least one row')
    return sizes


def split_assignment(sizes: Sequence[int], method: str, seed: int) -> Iterator[str]:
    """The split of each row in input order: the first ``sizes[0]`` rows train, then eval, then test (``order``),
    or the same sizes in an order shuffled by ``seed`` (``random``; one byte a row is held in memory)."""
    codes = np.repeat(np.arange(len(SPLITS), dtype=np.int8), sizes)
    if method == RANDOM:
        np.random.default_rng(seed).shuffle(codes)
    elif method != BY_ORDER:
        raise ValueError(f'unknown split method {method!r}; known: {", ".join(SPLIT_METHODS)}')
    for code in codes.tolist():
        yield SPLITS[code]


def open_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line number from 1, line without its end)`` of a UTF-8 text file, gzipped if it ends in ``.gz``. Empty
    lines (nothing, or spaces only) are skipped; a line holding tabs is a line (of empty fields: its format's parser
    says what is wrong with it).

    Raises:
        InputError: a line is not valid UTF-8 (naming the line and the column of the first bad byte).
    """
    opener = gzip.open if str(path).endswith('.gz') else open
    with opener(path, 'rb') as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b'\r\n')
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as e:
                column = len(raw[:e.start].decode('utf-8', 'replace')) + 1
                raise InputError(path, number, None, f'not valid UTF-8: byte 0x{raw[e.start]:02x} at character '
                                 f'{column} (re-encode the file as UTF-8)') from None
            if line.strip(' '):
                yield number, line


class SplitWriter:
    """Writes tf.Examples to ``out/tfrecord/<split>/part-00000.tfrecord`` and counts rows and positives.

    The examples are encoded by :func:`serialize_example` (faster than building ``tf.train.Example`` protos);
    TensorFlow only frames the records.
    """

    def __init__(self, out_dir: str, columns: Dict[str, str], label: str):
        """``columns``: column name → dtype ('int64', 'float32' or 'string'), the features of every example (a
        list column's values are Python lists)."""
        import tensorflow as tf  # pylint: disable=g-import-not-at-top
        self._columns, self._label = dict(columns), label
        self.rows = {name: 0 for name in SPLITS}
        self.positives = {name: 0 for name in SPLITS}
        self._writers = {}
        for name in SPLITS:
            directory = pathlib.Path(out_dir) / 'tfrecord' / name
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob('part-*'):
                stale.unlink()
            self._writers[name] = tf.io.TFRecordWriter(str(directory / 'part-00000.tfrecord'))

    def write(self, split: str, row: Dict[str, object]) -> None:
        self._writers[split].write(serialize_example(row, self._columns))
        self.rows[split] += 1
        self.positives[split] += row[self._label]

    def close(self) -> Dict[str, dict]:
        """Closes the files; returns split → ``{'rows', 'ctr'}``."""
        for writer in self._writers.values():
            writer.close()
        return {name: {'rows': self.rows[name],
                       'ctr': round(self.positives[name] / self.rows[name], 6) if self.rows[name] else None}
                for name in SPLITS}


def serialize_example(row: Dict[str, object], columns: Dict[str, str]) -> bytes:
    """The serialised tf.Example of one row: each column a list of its dtype, a scalar as a 1-element list and a
    Python list or tuple as a list of its values (empty: a present but empty list).

    Wire format (protobuf; ⟨n⟩ is the varint of n, |x| the length of x)::

        Example = 0x0A ⟨|Features|⟩ Features,   Features = Σ_columns 0x0A ⟨|Entry|⟩ Entry
        Entry   = 0x0A ⟨|name|⟩ name 0x12 ⟨|Feature|⟩ Feature,   Feature = tag ⟨|List|⟩ List
        List    = 0x0A ⟨|payload|⟩ payload (tag 0x1A int64_list: packed varints of the values' two's complement;
                  0x12 float_list: packed little-endian float32s), or Σ_values 0x0A ⟨|value|⟩ value (tag 0x0A
                  bytes_list: the UTF-8 bytes); an empty list is an empty List
    """
    features = bytearray()
    for name, dtype in columns.items():
        value = row[name]
        items = value if isinstance(value, (list, tuple)) else (value,)
        if dtype == 'string':
            tag = b'\x0a'
            values = b''.join(b'\x0a' + _varint(len(encoded)) + encoded for encoded in (v.encode() for v in items))
        else:
            if dtype == 'int64':
                tag, payload = b'\x1a', b''.join(_varint(v & 0xFFFFFFFFFFFFFFFF) for v in items)
            else:
                tag, payload = b'\x12', struct.pack(f'<{len(items)}f', *items)
            values = b'\x0a' + _varint(len(payload)) + payload if items else b''
        feature = tag + _varint(len(values)) + values
        key = name.encode()
        entry = b'\x0a' + _varint(len(key)) + key + b'\x12' + _varint(len(feature)) + feature
        features += b'\x0a' + _varint(len(entry)) + entry
    return b'\x0a' + _varint(len(features)) + bytes(features)


def _varint(value: int) -> bytes:
    """Protobuf varint of a non-negative integer: 7 bits a byte, low first, high bit set when more follow."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def write_spec(out_dir: str, header: str, spec: dict) -> str:
    """Writes the spec YAML (``header`` as comment lines on top, one line a column) and checks that the loader
    accepts it; returns its path."""
    from feature_spec import spec as spec_lib  # pylint: disable=g-import-not-at-top
    path = pathlib.Path(out_dir) / SPEC_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = ''.join(f'# {line}'.rstrip() + '\n' for line in header.strip().splitlines())
    head = {key: value for key, value in spec.items() if key != 'columns'}
    body = yaml.safe_dump(head, sort_keys=False, default_flow_style=None, width=120) + 'columns:\n'
    for name, column in spec['columns'].items():  # one line a column, as in the hand-written specs
        body += f'  {name}: ' + yaml.safe_dump(column, sort_keys=False, default_flow_style=True, width=1 << 16)
    path.write_text(comment + body)
    spec_lib.load(str(path))
    return str(path)


def write_metadata(out_dir: str, metadata: dict) -> dict:
    path = pathlib.Path(out_dir) / METADATA_FILE
    path.write_text(json.dumps(metadata, sort_keys=True, indent=2) + '\n')
    return metadata
