"""The public-format writers (:mod:`tfx_pipeline.data.public_formats`): their files have the documented shape and
import with the project's importers."""

import json

import pytest

from tfx_pipeline.data import public_formats
from tfx_pipeline.importers import amazon, libfm


def test_frappe_shape_and_import(tmp_path):
    path = str(tmp_path / 'frappe.libfm')
    written = public_formats.frappe(path, rows=3_001, seed=1)
    assert written['rows'] == 3_000 and written['positives'] == 1_000
    sizes = dict(public_formats.FRAPPE_FIELDS)
    assert sum(sizes.values()) == written['indices'] == 5_382
    starts = {}
    start = 0
    for name, size in public_formats.FRAPPE_FIELDS:
        starts[name] = (start, start + size)
        start += size
    with open(path) as f:
        lines = [line.split() for line in f]
    assert [line[0] for line in lines[:6]] == ['1', '-1', '-1', '1', '-1', '-1']
    for line in lines:
        assert len(line) == 11
        for (name, _), token in zip(public_formats.FRAPPE_FIELDS, line[1:]):
            index, value = token.split(':')
            assert value == '1'
            assert starts[name][0] <= int(index) < starts[name][1], (name, token)
    # A negative shares every field with its positive but the item.
    assert lines[0][1] == lines[1][1] and lines[0][3:] == lines[1][3:] == lines[2][3:]
    for name, size in public_formats.FRAPPE_FIELDS:
        assert 1 <= written['cardinalities'][name] <= size
    metadata = libfm.import_file(path, str(tmp_path / 'frappe'))
    assert metadata['rows'] == 3_000 and metadata['fields'] == list(range(10))
    assert sum(split['rows'] for split in metadata['splits'].values()) == 3_000
    assert abs(metadata['splits']['train']['ctr'] - 1 / 3) < 0.03


def test_amazon_shape_and_import(tmp_path):
    path = str(tmp_path / 'amazon.txt')
    written = public_formats.amazon(path, users=300, items=400, categories=30, seed=2)
    assert written['positive_rate'] == 0.5 and written['mean_reviews_per_user'] >= 5
    with open(path) as f:
        lines = [line.rstrip('\n').split('\t') for line in f]
    assert len(lines) == written['rows']
    assert all(len(line) == 6 for line in lines)
    assert [line[0] for line in lines[:4]] == ['1', '0', '1', '0']
    long = [line for line in lines if public_formats.HISTORY_SEPARATOR in line[4]]
    assert long and all(len(line[4].split('\x02')) == len(line[5].split('\x02')) for line in lines)
    assert {line[3] for line in lines} <= {f'Cat{c:04d}' for c in range(30)}
    # Each user's first positive has one history step; the history grows by one review a pair.
    first = lines[0]
    assert len(first[4].split('\x02')) == 1 and lines[2][4].split('\x02')[:1] == first[4].split('\x02')
    metadata = amazon.import_file(path, str(tmp_path / 'amazon'))
    assert sum(split['rows'] for split in metadata['splits'].values()) == written['rows']
    assert metadata['splits']['train']['ctr'] == pytest.approx(0.5, abs=0.01)


def test_cli_prints_one_json_line(tmp_path, capsys):
    assert public_formats.main(['frappe', '--out', str(tmp_path / 'f.libfm'), '--rows', '30']) == 0
    line = json.loads(capsys.readouterr().out)
    assert line['rows'] == 30 and line['format'] == 'libfm'


def test_imported_test_columns(tmp_path):
    """The experiment helpers read an import's test split: a string GAUC group (Amazon's user id), no group at all
    (libFM), and a directory that is not an import is refused by name."""
    from feature_spec import spec as spec_lib  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import experiment  # pylint: disable=import-outside-toplevel
    public_formats.amazon(str(tmp_path / 'amazon.txt'), users=60, items=100, categories=10, seed=3)
    amazon.import_file(str(tmp_path / 'amazon.txt'), str(tmp_path / 'amazon'))
    spec = spec_lib.load(str(tmp_path / 'amazon' / 'feature_spec.yaml'))
    columns = experiment._test_columns(spec, str(tmp_path / 'amazon' / 'tfrecord' / 'test' / '*'))
    assert set(columns) == {'click', 'user_id'} and columns['user_id'][0].startswith(b'A')
    public_formats.frappe(str(tmp_path / 'frappe.libfm'), rows=300, seed=3)
    libfm.import_file(str(tmp_path / 'frappe.libfm'), str(tmp_path / 'frappe'))
    spec = spec_lib.load(str(tmp_path / 'frappe' / 'feature_spec.yaml'))
    columns = experiment._test_columns(spec, str(tmp_path / 'frappe' / 'tfrecord' / 'test' / '*'))
    assert set(columns) == {'click'} and len(columns['click']) == 30
    with pytest.raises(FileNotFoundError, match='metadata.json'):
        experiment.prepare_imported(str(tmp_path / 'nothing'), str(tmp_path / 'work'))
