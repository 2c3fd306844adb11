"""Property tests (Hypothesis): every importer, fed random corruptions of a fixture file (bytes replaced, inserted,
deleted, a cut, a separator, a non-finite or too large number, a bad byte), either succeeds with exactly the rows a
clean reading of the corrupted text gives, or exits 2 with a message naming the file and the line (or saying the
rows are too few for the splits), leaving no output behind. Never a traceback, never a silently different row.

The clean reading is this module's own small parser of each format (``*_rows``), written from the format's
description, not from the importer: the Criteo, libFM and Amazon rows are compared value by value with the written
examples; the sequence and MovieLens importers, whose rows are built per user, are compared with their import of
the clean reading written back as a well-formed file.
"""

import math
import pathlib
import re
import struct

import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfx_pipeline.importers import __main__ as cli
from tfx_pipeline.importers import amazon, common

FIXTURES = pathlib.Path(__file__).parent.parent / 'fixtures'
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
INVALID = object()
TOKENS = (b'\t', b'\n', b' ', b'\x02', b'|', b':', b'::', b'nan', b'inf', b'-', b'1e39', b'99999999999999999999',
          b'\r\n', b'\xff', b'\xc3', b'\t\t\t', b'0', b'1', b'-1')
_INTEGER = re.compile(r'[+-]?[0-9]+')


def _head(name, lines):
    return b''.join(open(FIXTURES / name, 'rb').readlines()[:lines])


SOURCES = {'criteo': _head('criteo_sample.txt', 40), 'libfm': _head('frappe_sample.libfm', 30),
           'amazon': _head('amazon_sample.txt', 30), 'sequence': _head('sequence_sample.txt', 31),
           'movielens': _head('ml-1m/ratings.dat', 39)}
OPTIONS = {'criteo': ['--min_frequency', '1'], 'libfm': ['--split_by', 'order'], 'amazon': [], 'sequence': [],
           'movielens': []}


KINDS = ('replace', 'insert', 'delete', 'cut', 'cut_end', 'token', 'digit', 'blank', 'crlf', 'repeat')


@st.composite
def corrupted(draw, data: bytes):
    """``data`` with one to three corruptions applied in turn, each at a line drawn first and a byte of it: bytes
    replaced, inserted or deleted, the file cut there or inside the line's last column, a token written over it (a separator, a non-finite or too
    large number, a bad byte), a digit changed (a well-formed file with another value), a blank line inserted, a
    ``\\r\\n`` line end, the line repeated."""
    for _ in range(draw(st.integers(1, 3))):
        lines = data.splitlines(keepends=True) or [b'']
        k = draw(st.integers(0, len(lines) - 1))
        line = lines[k]
        at = draw(st.integers(0, max(len(line) - 1, 0)))
        before, after = b''.join(lines[:k]), b''.join(lines[k + 1:])
        kind = draw(st.sampled_from(KINDS))
        if kind == 'replace':
            line = line[:at] + draw(st.binary(min_size=1, max_size=3)) + line[at + 1:]
        elif kind == 'insert':
            line = line[:at] + draw(st.binary(min_size=1, max_size=3)) + line[at:]
        elif kind == 'delete':
            line = line[:at] + line[at + draw(st.integers(1, 8)):]
        elif kind == 'cut':
            line, after = line[:at], b''
        elif kind == 'cut_end':   # inside the line's last column
            line, after = line[:max(len(line) - 1 - draw(st.integers(1, 6)), 0)], b''
        elif kind == 'token':
            line = line[:at] + draw(st.sampled_from(TOKENS)) + line[at + draw(st.integers(0, 2)):]
        elif kind == 'digit':
            if line[at:at + 1].isdigit():
                line = line[:at] + str(draw(st.integers(0, 9))).encode() + line[at + 1:]
        elif kind == 'blank':
            line = draw(st.sampled_from((b'\n', b'   \n', b'\r\n'))) + line
        elif kind == 'crlf':
            line = line[:-1] + b'\r\n' if line.endswith(b'\n') else line
        else:
            line = line + line if line.endswith(b'\n') else line
        data = before + line + after
    return data


# ---------------------------------------------------------------------------------------------------------------
# The clean reading of each format (INVALID when the importer must refuse the text).


def text_lines(data: bytes):
    """``[(line number, line)]``: lines end at ``\\n`` (a ``\\r`` before it is dropped), blank (space-only) lines
    are skipped; INVALID when a line is not UTF-8 or the last non-blank line has no ``\\n``."""
    parts = data.split(b'\n')
    lines = []
    for number, raw in enumerate(parts, start=1):
        last = number == len(parts)
        if last and raw == b'':
            break
        try:
            line = raw.rstrip(b'\r').decode('utf-8')
        except UnicodeDecodeError:
            return INVALID
        if not line.strip(' '):
            continue
        if last:
            return INVALID
        lines.append((number, line))
    return lines


def _int64(text):
    text = text.strip()
    if not _INTEGER.fullmatch(text) or not -2 ** 63 <= int(text) < 2 ** 63:
        return INVALID
    return int(text)


def _float32(text):
    try:
        value = float(text)
    except ValueError:
        return INVALID
    if not math.isfinite(value) or abs(value) > 3.4028234663852886e38:
        return INVALID
    return struct.unpack('<f', struct.pack('<f', value))[0]


def criteo_rows(lines):
    rows = []
    for _, line in lines:
        fields = line.split('\t')
        if len(fields) != 40 or fields[0] not in ('0', '1'):
            return INVALID
        row = {'click': [int(fields[0])]}
        for k, text in enumerate(fields[1:14], start=1):
            row[f'I{k}'] = [0 if not text.strip() else _int64(text)]
            if row[f'I{k}'] == [INVALID]:
                return INVALID
        for k, text in enumerate(fields[14:], start=1):
            row[f'C{k}'] = [(text.strip() or '__missing__').encode()]
        rows.append(row)
    return rows


def libfm_rows(lines):
    parsed, variant, width = [], None, None
    for _, line in lines:
        tokens = line.split()
        try:
            label = {-1.0: 0, 0.0: 0, 1.0: 1}[float(tokens[0])]
        except (ValueError, KeyError):
            return INVALID
        features = {}
        for position, token in enumerate(tokens[1:], start=1):
            parts = token.split(':')
            if len(parts) not in (2, 3) or variant not in (None, len(parts)):
                return INVALID
            variant = len(parts)
            field = _int64(parts[0]) if variant == 3 else position - 1
            index, value = _int64(parts[-2]), _float32(parts[-1])
            if INVALID in (field, index, value) or field < 0 or index < 0 or field in features:
                return INVALID
            features[field] = (index, value)
        if not features or (variant == 2 and len(features) != (width := width or len(features))):
            return INVALID
        parsed.append((label, features))
    fields = sorted({f for _, features in parsed for f in features})
    valued = {f for _, features in parsed for f, (_, v) in features.items() if v != 1.0}
    rows = []
    for label, features in parsed:
        row = {'click': [label]}
        for f in fields:
            index, value = features.get(f, (-1, 0.0))
            row[f'f{f}'] = [index]
            if f in valued:
                row[f'f{f}_value'] = [value]
        rows.append(row)
    return rows


def amazon_rows(lines):
    rows = []
    for _, line in lines:
        fields = line.split('\t')
        if len(fields) != 6 or fields[0] not in ('0', '1') or not all(t.strip() for t in fields[1:4]):
            return INVALID
        histories = [t.split('\x02') if t else [] for t in fields[4:]]
        if any(not s.strip() for h in histories for s in h) or len(histories[0]) != len(histories[1]):
            return INVALID
        rows.append({'click': [int(fields[0])], **{n: [t.strip().encode()] for n, t in
                                                     zip(('user_id', 'item_id', 'category'), fields[1:4])},
                     'hist_item_id': [s.encode() for s in histories[0]],
                     'hist_category': [s.encode() for s in histories[1]]})
    single = [r['hist_item_id'][0].decode() for r in rows if len(r['hist_item_id']) == 1]
    if rows and max(len(r['hist_item_id']) for r in rows) <= 1 and single:
        for separator in amazon.OTHER_SEPARATORS:   # a history written with another separator is refused
            if sum(separator in h for h in single) > len(single) / 2:
                return INVALID
    return rows


def sequence_text(lines):
    """The clean file: ``user item`` a line."""
    pairs = [line.split() for _, line in lines]
    if any(len(p) != 2 for p in pairs):
        return INVALID
    return ''.join(f'{u} {i}\n' for u, i in pairs).encode()


def movielens_text(lines):
    """The clean file: ``user::movie::rating::timestamp`` a line, the values re-written."""
    out = []
    for _, line in lines:
        fields = line.split('::')
        if len(fields) != 4:
            return INVALID
        user, movie, rating, time = _int64(fields[0]), _int64(fields[1]), _float32(fields[2]), _int64(fields[3])
        if INVALID in (user, movie, rating, time):
            return INVALID
        out.append(f'{user}::{movie}::{float(fields[2])!r}::{time}\n')
    return ''.join(out).encode()


# ---------------------------------------------------------------------------------------------------------------
# Running an import.


def _import(fmt, data: bytes, directory: pathlib.Path, capsys):
    source = directory / 'input.txt'
    source.write_bytes(data)
    out = directory / 'out'
    code = cli.main([fmt, '--input', str(source), '--out', str(out), *OPTIONS[fmt]])
    captured = capsys.readouterr()
    return code, captured.err, str(source), out


def _records(out):
    """Every written example, splits in train, eval, test order, as serialised bytes."""
    records = []
    for split in common.SPLITS:
        records += [r.numpy() for r in tf.data.TFRecordDataset(str(out / 'tfrecord' / split / 'part-00000.tfrecord'))]
    return records


def _values(record):
    features = tf.train.Example.FromString(record).features.feature
    return {name: list(getattr(f, f.WhichOneof('kind')).value) if f.WhichOneof('kind') else []
            for name, f in features.items()}


def _check_refusal(code, error, source, out, lines):
    assert code == 2, error
    assert error.startswith(f'error: {source}'), error
    where = re.match(rf'error: {re.escape(source)}:(\d+):', error)
    assert where or 'too few' in error or 'every split needs' in error, error
    if where and lines is not INVALID and lines:
        assert 1 <= int(where.group(1)) <= lines[-1][0] + 1, error
    assert not out.exists(), 'a refused import wrote its output'
    assert [p.name for p in out.parent.iterdir()] == ['input.txt'], 'a staging directory was left behind'


def _on_corrupted_files(fmt, tmp_path_factory, capsys, check):
    """Imports Hypothesis' corruptions of the format's fixture and calls ``check(code, error, source, out, lines)``
    on each (``lines``: the clean reading's lines of the corrupted bytes, or INVALID)."""
    @SETTINGS
    @given(data=corrupted(SOURCES[fmt]))
    def run(data):
        code, error, source, out = _import(fmt, data, tmp_path_factory.mktemp(fmt), capsys)
        check(code, error, source, out, text_lines(data))
    run()


@pytest.mark.parametrize('fmt,reader', [('criteo', criteo_rows), ('libfm', libfm_rows), ('amazon', amazon_rows)])
def test_row_importers_on_corrupted_files(fmt, reader, tmp_path_factory, capsys):
    def check(code, error, source, out, lines):
        rows = INVALID if lines is INVALID else reader(lines)
        if rows is INVALID:
            assert code == 2, 'imported a file the clean reading refuses'
            _check_refusal(code, error, source, out, lines)
        elif code == 2:   # a clean file can still have too few rows for three splits
            assert 'too few' in error, f'refused a file the clean reading accepts: {error}'
            _check_refusal(code, error, source, out, lines)
        else:
            assert code == 0, error
            assert [_values(r) for r in _records(out)] == rows
    _on_corrupted_files(fmt, tmp_path_factory, capsys, check)


@pytest.mark.parametrize('fmt,writer', [('sequence', sequence_text), ('movielens', movielens_text)])
def test_sequence_importers_on_corrupted_files(fmt, writer, tmp_path_factory, capsys):
    def check(code, error, source, out, lines):
        clean = INVALID if lines is INVALID else writer(lines)
        if clean is INVALID:
            _check_refusal(code, error, source, out, lines)
            return
        clean_code, clean_error, _, clean_out = _import(fmt, clean, tmp_path_factory.mktemp(fmt), capsys)
        assert code == clean_code, (error, clean_error)
        if code == 0:
            assert _records(out) == _records(clean_out)
        else:
            _check_refusal(code, error, source, out, lines)
    _on_corrupted_files(fmt, tmp_path_factory, capsys, check)
