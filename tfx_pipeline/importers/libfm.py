"""Importer of libFM / libFFM files (the Frappe and MovieLens-tag data sets of the NFM and AFM papers).

Format: one example a line, whitespace-separated: ``label field:index:value …`` (libFFM, with fields) or
``label index:value …`` (libFM, no fields; then the k-th feature of a line is field k − 1, so every line must have
the same number of features, as the NFM release of Frappe, 10 a line, has). A file uses one variant throughout.

Choices:

* Label: -1 and 0 → 0, 1 → 1 (written ``-1``, ``1``, ``-1.0`` …), the label column ``click``; anything else is
  an error.
* Fields: each field ``k`` becomes one categorical int64 column ``f<k>`` holding the feature's index, with its own
  vocabulary of the training split (``min_frequency``, default 1: every index of the training split; as in NFM/AFM,
  which embed every feature). A field absent from a line (libFFM only) is written as index ``MISSING_INDEX`` (-1),
  a category of its own.
* Multi-valued fields (a field twice in one line) are rejected: Frappe and MovieLens-tag have exactly one feature
  per field, and a bag of ids would need the behaviour-sequence machinery the spec reserves for histories.
* Values: Frappe and MovieLens-tag have value 1 everywhere, which carries nothing beyond the index. A field whose
  values are not all 1 in the file also gets a numeric float32 column ``f<k>_value`` (``zscore``), 0 where the
  field is absent; FM's x_i · v_i becomes the embedding of the index beside the value as a numeric input.
* Split: random with a seed (default 70/20/10 train/eval/test, seed 0), as the NFM/AFM experiments split Frappe;
  ``split_method='order'`` splits by line order instead.
* Group: the fields are numbered, not named, so all features go in the ``item`` group (the reason is that of
  :mod:`tfx_pipeline.importers.criteo`: every candidate of the ``rank`` signature carries all of its columns).
"""

import dataclasses
import pathlib
import re
from typing import Dict, Optional, Sequence, Tuple

from tfx_pipeline.importers import common

LABEL = 'click'
MISSING_INDEX = -1
DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)
DEFAULT_MIN_FREQUENCY = 1
FORMAT = 'libfm'
WITH_FIELDS = 'field:index:value'
WITHOUT_FIELDS = 'index:value'
_LABELS = {-1.0: 0, 0.0: 0, 1.0: 1}


@dataclasses.dataclass
class Scan:
    """What the first pass learns: rows, the variant, the fields and which of them carry values other than 1."""
    rows: int = 0
    variant: str = ''
    width: int = 0                      # features a line, without fields
    fields: set = dataclasses.field(default_factory=set)
    valued: set = dataclasses.field(default_factory=set)


def parse_line(path: str, number: int, line: str, scan: Scan) -> Tuple[int, Dict[int, Tuple[int, float]]]:
    """One line → ``(label 0/1, field → (index, value))``; the first line fixes ``scan.variant`` and width.

    Raises:
        common.InputError: a bad label, a malformed feature (field and index must be integers within int64, the
            value a finite float32), a field given twice, or a change of variant or width.
    """
    tokens = line.split()
    try:
        label = _LABELS[float(tokens[0])]
    except (ValueError, KeyError):
        raise common.InputError(path, number, 'label', f'label must be -1, 0 or 1, got {tokens[0]!r}') from None
    features = {}
    for position, token in enumerate(tokens[1:], start=1):
        column = f'feature {position}'
        parts = token.split(':')
        variant = {3: WITH_FIELDS, 2: WITHOUT_FIELDS}.get(len(parts))
        if variant is None:
            raise common.InputError(path, number, column, f'{token!r} is not field:index:value or index:value')
        scan.variant = scan.variant or variant
        if variant != scan.variant:
            raise common.InputError(path, number, column, f'{token!r} is {variant} but the file so far is '
                                                          f'{scan.variant}')
        field = common.parse_int64(path, number, column, parts[0]) if variant == WITH_FIELDS else position - 1
        index = common.parse_int64(path, number, column, parts[-2])
        value = common.parse_float32(path, number, column, parts[-1])
        if field < 0 or index < 0:
            raise common.InputError(path, number, column, f'{token!r}: field and index must be >= 0')
        if field in features:
            raise common.InputError(path, number, column, f'field {field} appears twice; multi-valued fields are '
                                                          'not supported')
        features[field] = (index, value)
    if scan.variant == WITHOUT_FIELDS:
        scan.width = scan.width or len(features)
        if len(features) != scan.width:
            raise common.InputError(path, number, None, f'{len(features)} features, but the first line has '
                                                        f'{scan.width} (without fields, feature k is field k - 1)')
    if not features:
        raise common.InputError(path, number, None, 'no features')
    return label, features


def scan_file(path: str, duplicates: Optional[common.Duplicates] = None) -> Scan:
    """The first pass: checks every line, counts them, collects fields and valued fields (and adds every line to
    ``duplicates``)."""
    scan = Scan()
    for number, line in common.open_lines(path):
        _, features = parse_line(path, number, line, scan)
        scan.rows += 1
        scan.fields.update(features)
        scan.valued.update(field for field, (_, value) in features.items() if value != 1.0)
        if duplicates is not None:
            duplicates.add(line)
    return scan


def columns(scan: Scan) -> Dict[str, str]:
    """Column name → dtype of the written examples."""
    names = {LABEL: 'int64'}
    for field in sorted(scan.fields):
        names[f'f{field}'] = 'int64'
        if field in scan.valued:
            names[f'f{field}_value'] = 'float32'
    return names


def to_row(label: int, features: Dict[int, Tuple[int, float]], scan: Scan) -> Dict[str, object]:
    row = {LABEL: label}
    for field in scan.fields:
        index, value = features.get(field, (MISSING_INDEX, 0.0))
        row[f'f{field}'] = index
        if field in scan.valued:
            row[f'f{field}_value'] = value
    return row


def feature_spec(name: str, scan: Scan, min_frequency: int) -> dict:
    """The feature spec (YAML structure) of the imported columns."""
    vocabulary = {'type': 'vocabulary', 'num_oov_buckets': 1}
    if min_frequency > 1:
        vocabulary['min_frequency'] = min_frequency
    spec_columns: Dict[str, dict] = {LABEL: {'kind': 'label'}}
    for column, dtype in columns(scan).items():
        if column == LABEL:
            continue
        if dtype == 'int64':
            spec_columns[column] = {'kind': 'categorical', 'group': 'item', 'transform': dict(vocabulary)}
        else:
            spec_columns[column] = {'kind': 'numeric', 'group': 'item', 'transform': 'zscore'}
    return {'name': name, 'description': f'libFM data ({scan.variant}), one categorical column per field.',
            'defaults': {'embedding_dim': 8}, 'columns': spec_columns}


def import_file(path: str, out_dir: str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                min_frequency: int = DEFAULT_MIN_FREQUENCY, split_method: str = common.RANDOM, seed: int = 0) -> dict:
    """Imports a libFM/libFFM file into ``out_dir`` (layout in :mod:`tfx_pipeline.importers.common`).

    Returns:
        The metadata written to ``metadata.json``.

    Raises:
        common.InputError: a malformed line (nothing is written then).
        ValueError: too few lines for the splits, or a bad option.

    Rows repeated across splits give a warning (``metadata['warnings']``; :class:`common.Duplicates`).
    """
    if min_frequency < 1:
        raise ValueError(f'min_frequency must be >= 1, got {min_frequency}')
    if split_method not in common.SPLIT_METHODS:
        raise ValueError(f'unknown split method {split_method!r}; known: {", ".join(common.SPLIT_METHODS)}')
    duplicates = common.Duplicates(path)
    scan = scan_file(path, duplicates)
    sizes = common.split_sizes(scan.rows, fractions, path)
    codes = common.split_codes(sizes, split_method, seed)
    duplicates.find(codes)
    name = 'libfm_' + re.sub(r'\W+', '_', pathlib.Path(path).name.split('.')[0])
    with common.StagedOutput(out_dir) as out:
        common.write_spec(out.stage, f'Feature spec of {path}, written by tfx_pipeline.importers.libfm (choices in '
                          'its docstring).', feature_spec(name, scan, min_frequency))
        writer = common.SplitWriter(out.stage, columns(scan), LABEL)
        for split, number, line in duplicates.rows(codes, common.open_lines(path)):
            writer.write(split, to_row(*parse_line(path, number, line, scan), scan))
        return common.write_metadata(out.stage, {
            'format': FORMAT, 'variant': scan.variant, 'source': str(path), 'feature_spec': out.path(common.SPEC_FILE),
            'rows': scan.rows, 'splits': writer.close(), 'split_method': split_method, 'fractions': list(fractions),
            'seed': seed, 'min_frequency': min_frequency, 'fields': sorted(scan.fields),
            'valued_fields': sorted(scan.valued), 'missing_index': MISSING_INDEX,
            'duplicates': duplicates.metadata(), 'warnings': duplicates.warnings()})
