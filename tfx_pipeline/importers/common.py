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

Nothing is written half-way: an importer writes into a staging directory beside ``out`` (:class:`StagedOutput`)
and moves the files into ``out`` only once every one of them is complete, so a failure (a bad line, a full disk,
an interrupt) leaves ``out`` as it was.

Checks every importer shares (each failure an :class:`InputError` naming the file, line and column): UTF-8 text;
a last line that ends with a line end (a file cut by an interrupted download or copy ends inside a line, and its
last field would import as a wrong value); a gzip stream that is complete; integers within int64 and numbers
finite within float32 (:func:`parse_int64`, :func:`parse_float32`). Warnings, for data that imports but is
suspicious (rows repeated across splits, :class:`Duplicates`; shapes such as every history of length 1), go to
``metadata.json``'s ``warnings`` and to stderr from the command line.
"""

import array
import gzip
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import struct
import zlib
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml

SPLITS = ('train', 'eval', 'test')
SPEC_FILE = 'feature_spec.yaml'
METADATA_FILE = 'metadata.json'
BY_ORDER = 'order'
RANDOM = 'random'
SPLIT_METHODS = (BY_ORDER, RANDOM)
INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
DUPLICATE_WARNING_FRACTION = 0.01  # held-out rows repeating a train row above this fraction get a warning
_INTEGER = re.compile(r'[+-]?[0-9]+')


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


def split_codes(sizes: Sequence[int], method: str, seed: int) -> np.ndarray:
    """The split of each row in input order as an index into ``SPLITS``: the first ``sizes[0]`` rows train, then
    eval, then test (``order``), or the same sizes in an order shuffled by ``seed`` (``random``); one byte a row."""
    codes = np.repeat(np.arange(len(SPLITS), dtype=np.int8), sizes)
    if method == RANDOM:
        np.random.default_rng(seed).shuffle(codes)
    elif method != BY_ORDER:
        raise ValueError(f'unknown split method {method!r}; known: {", ".join(SPLIT_METHODS)}')
    return codes


def split_assignment(sizes: Sequence[int], method: str, seed: int) -> Iterator[str]:
    """The split name of each row in input order (:func:`split_codes`)."""
    for code in split_codes(sizes, method, seed).tolist():
        yield SPLITS[code]


def parse_int64(path: str, number: int, column: str, text: str) -> int:
    """A decimal integer within int64 (tf.Example's integer type); surrounding spaces are allowed.

    Raises:
        InputError: not an integer, or outside [-2⁶³, 2⁶³ − 1] (it would be written wrapped around).
    """
    text = text.strip()
    if not _INTEGER.fullmatch(text):
        raise InputError(path, number, column, f'not an integer: {text!r}')
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise InputError(path, number, column, f'{text} is outside the 64-bit integer range [-2^63, 2^63 - 1]')
    return value


def parse_float32(path: str, number: int, column: str, text: str) -> float:
    """A finite number within float32's range (tf.Example's float type).

    Raises:
        InputError: not a number, ``nan``/``inf``, or a magnitude float32 cannot hold (it would become inf).
    """
    try:
        value = float(text)
    except ValueError:
        raise InputError(path, number, column, f'not a number: {text.strip()!r}') from None
    if not math.isfinite(value):
        raise InputError(path, number, column, f'{text.strip()!r} is not a finite number (a NaN or infinite '
                                               'value would make the training loss NaN)')
    if abs(value) > FLOAT32_MAX:
        raise InputError(path, number, column, f'{text.strip()} is beyond the float32 range (±{FLOAT32_MAX:.4g})')
    return value


def open_lines(path: str, encoding: str = 'utf-8') -> Iterator[Tuple[int, str]]:
    """``(line number from 1, line without its end)`` of a text file (UTF-8 unless ``encoding`` says otherwise),
    gzipped if it ends in ``.gz``. Empty lines (nothing, or spaces only) are skipped; a line holding tabs is a line
    (of empty fields: its format's parser says what is wrong with it).

    Raises:
        InputError: a line that does not decode (naming the line and the character of the first bad byte); a last
            line without a line end (the file looks cut: its last field may be incomplete); a gzip stream that
            ends early or is corrupt (naming the last complete line).
    """
    opener = gzip.open if str(path).endswith('.gz') else open
    number = 0
    with opener(path, 'rb') as f:
        raws = iter(f)
        while True:
            try:
                raw = next(raws)
            except StopIteration:
                return
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise InputError(path, number + 1, None, f'the gzip stream is cut or corrupt after line {number} '
                                                         f'({e}); download or copy the file again') from None
            number += 1
            ended = raw.endswith(b'\n')
            raw = raw.rstrip(b'\r\n')
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as e:
                column = len(raw[:e.start].decode(encoding, 'replace')) + 1
                name = 'UTF-8' if encoding == 'utf-8' else encoding
                raise InputError(path, number, None, f'not valid {name}: byte 0x{raw[e.start]:02x} at character '
                                 f'{column} (re-encode the file as {name})') from None
            if not line.strip(' '):
                continue
            if not ended:
                raise InputError(path, number, None, 'the last line has no line end: the file looks cut (an '
                                 'interrupted download or copy) and the line\'s last column may be incomplete; if the '
                                 f'file is complete, end it with a newline (echo >> {path})')
            yield number, line


class StagedOutput:
    """The output directory of an import, written in a staging directory beside it and published when complete.

        with StagedOutput(out_dir) as out:
            write_spec(out.stage, ...); SplitWriter(out.stage, ...); write_metadata(out.stage, {...})

    On leaving the block without an error, every file and directory of the stage replaces the one of the same name
    in ``out_dir`` (other files of ``out_dir`` are kept); on an error the stage is deleted and ``out_dir`` is left
    as it was. ``out.path(name)`` is where ``name`` will be once published (for metadata).
    """

    def __init__(self, out_dir: str):
        self.out = pathlib.Path(out_dir)
        self.stage = str(self.out.parent / f'.{self.out.name}.importing-{os.getpid()}')

    def path(self, name: str) -> str:
        return str(self.out / name)

    def __enter__(self) -> 'StagedOutput':
        shutil.rmtree(self.stage, ignore_errors=True)
        pathlib.Path(self.stage).mkdir(parents=True)
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.stage, ignore_errors=True)
            return False
        self.out.mkdir(parents=True, exist_ok=True)
        for entry in sorted(pathlib.Path(self.stage).iterdir()):
            target = self.out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
        pathlib.Path(self.stage).rmdir()
        return False


class Duplicates:
    """Rows that repeat an earlier row exactly (the same line), within and across splits.

    The first pass adds every row's line (:meth:`add`: an 8-byte hash a row, the only memory that grows with the
    file); once the splits are drawn, :meth:`find` counts the rows repeating an earlier one and the held-out
    (eval and test) rows that also occur in train, whose scores then measure memorisation, not generalisation
    (a public sample file that repeats its lines gave a test AUC of 0.98); the second pass reads its rows through
    :meth:`rows`, which notes the line numbers of an example pair for the warning. Hash collisions (2⁻⁶⁴ a pair)
    are ignored.
    """

    def __init__(self, path: str):
        self._path = path
        self._hashes = array.array('Q')
        self.found = None
        self._lines: Dict[int, int] = {}

    def add(self, line: str) -> None:
        self._hashes.append(int.from_bytes(hashlib.blake2b(line.encode(), digest_size=8).digest(), 'little'))

    def find(self, codes: np.ndarray) -> dict:
        """``{'repeated_rows', 'held_out_rows', 'held_out_rows_in_train', 'example'}`` given each row's split code;
        ``example`` is a pair of row indices (the first held-out row found in train, the earliest train row equal
        to it) or None."""
        hashes = np.frombuffer(self._hashes, dtype=np.uint64) if len(self._hashes) else np.zeros(0, np.uint64)
        order = np.argsort(hashes, kind='stable')
        ordered = hashes[order]
        first = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, bool)
        group = np.cumsum(first) - 1
        in_train = codes[order] == 0
        train_row = np.full(int(group[-1]) + 1 if len(group) else 0, -1, np.int64)
        train_row[group[in_train][::-1]] = order[in_train][::-1]   # the earliest train row of each group
        leaked = ~in_train & (train_row[group] >= 0)
        example = None
        if leaked.any():
            rows = order[leaked]
            k = int(np.argmin(rows))
            example = (int(rows[k]), int(train_row[group[leaked]][k]))
        self.found = {'repeated_rows': int((~first).sum()), 'held_out_rows': int((codes != 0).sum()),
                      'held_out_rows_in_train': int(leaked.sum()), 'example': example}
        return self.found

    def rows(self, codes: np.ndarray, lines: Iterable[Tuple[int, str]]) -> Iterator[Tuple[str, int, str]]:
        """``(split, line number, line)`` of each row (the second pass), noting the example pair's line numbers."""
        wanted = set(self.found['example'] or ()) if self.found else set()
        for row, (code, (number, line)) in enumerate(zip(codes.tolist(), lines)):
            if row in wanted:
                self._lines[row] = number
            yield SPLITS[code], number, line

    def metadata(self) -> dict:
        """The counts, and the example as line numbers (after :meth:`rows`), for ``metadata.json``."""
        example = self.found['example']
        return {**self.found, 'example': None if example is None else [self._lines.get(row) for row in example]}

    def warnings(self) -> List[str]:
        """A warning (a list of at most one) when more than ``DUPLICATE_WARNING_FRACTION`` of the held-out rows
        repeat a train row."""
        found = self.metadata()
        leaked, held_out = found['held_out_rows_in_train'], found['held_out_rows']
        if not held_out or leaked <= DUPLICATE_WARNING_FRACTION * held_out:
            return []
        held, train = found['example']
        return [f'{self._path}: {leaked} of the {held_out} eval and test rows ({leaked / held_out:.1%}) repeat a train '
                f'row exactly (line {held} repeats line {train}): held-out metrics will score memorised rows; remove '
                'repeated lines (e.g. sort -u) before importing, unless repeats are real events']


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
                tag, payload = b'\x1a', b''.join(int64_varint(v) for v in items)
            else:
                tag, payload = b'\x12', struct.pack(f'<{len(items)}f', *items)
            values = b'\x0a' + _varint(len(payload)) + payload if items else b''
        feature = tag + _varint(len(values)) + values
        key = name.encode()
        entry = b'\x0a' + _varint(len(key)) + key + b'\x12' + _varint(len(feature)) + feature
        features += b'\x0a' + _varint(len(entry)) + entry
    return b'\x0a' + _varint(len(features)) + bytes(features)


def int64_varint(value: int) -> bytes:
    """The varint of an int64 value's two's complement (10 bytes for a negative one).

    Raises:
        ValueError: the value is outside int64 (the parsers reject such values with the line; this guards the
            writer against wrapping one around silently).
    """
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f'{value} is outside the 64-bit integer range')
    return _varint(value & 0xFFFFFFFFFFFFFFFF)


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
    """Writes ``metadata.json`` (``metadata`` with ``warnings``, an empty list if it has none); returns it."""
    metadata = {'warnings': [], **metadata}
    path = pathlib.Path(out_dir) / METADATA_FILE
    path.write_text(json.dumps(metadata, sort_keys=True, indent=2) + '\n')
    return metadata
