"""Importer of the Criteo click logs (Display Advertising Challenge ``train.txt``, Criteo 1TB ``day_N``).

Format: one impression a line, 40 tab-separated columns ``label I1 … I13 C1 … C26``:

* ``label``: 1 click, 0 no click → the label column ``click``.
* ``I1`` … ``I13``: integer features (mostly counts), possibly negative (``I2`` is), possibly empty (missing).
* ``C1`` … ``C26``: categorical features, hashed to 8 hex digits, possibly empty (missing).

Choices, as the DCN (Wang et al., 2017) and DeepFM (Guo et al., 2017) experiments preprocess Criteo:

* Integers: a missing integer is written as 0 (``MISSING_INTEGER``, the ``fillna(0)`` of the public DeepFM/DCN
  reproductions); the column is read as int64 and gets the spec's ``log`` transform, z-scored log(1 + max(x, 0))
  (DCN: "we normalize the real-valued features by applying a log transform"). Missing, 0 and negative values thus
  all become log1p(0) = 0 before the z-score.
* Categoricals: a missing value is written as the token ``MISSING_TOKEN`` (no hashed Criteo value looks like it),
  so "missing" is a category of its own and gets an embedding when it is frequent enough. Each column has its own
  vocabulary of the training split with ``min_frequency`` (default 10, the threshold AutoInt (Song et al., 2019)
  and the public DeepFM/DCN benchmarks use for Criteo): rarer ids fall into the OOV bucket, one "unknown" id.
* Split: the lines are in time order but carry no timestamp, so the split is by line order: the first 80 % train,
  the next 10 % eval, the last 10 % test (``fractions``), i.e. train on the past, evaluate on the future.
* Group: the columns are anonymous, so they cannot be told apart into user, item and context; all features go in
  the ``item`` group. A model sees the same inputs whatever the group (DeepFM treats every input as a field), and
  in the ``rank`` serving signature every candidate example then carries all of its columns, so no column is
  wrongly shared between the candidates of a request (with ``context`` the candidates would carry nothing and get
  equal scores).
"""

from typing import Dict, Sequence

from tfx_pipeline.importers import common

LABEL = 'click'
INTEGER_COLUMNS = tuple(f'I{k}' for k in range(1, 14))
CATEGORICAL_COLUMNS = tuple(f'C{k}' for k in range(1, 27))
COLUMNS = (LABEL,) + INTEGER_COLUMNS + CATEGORICAL_COLUMNS
MISSING_INTEGER = 0
MISSING_TOKEN = '__missing__'
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_MIN_FREQUENCY = 10
FORMAT = 'criteo'


def parse_line(path: str, number: int, line: str) -> Dict[str, object]:
    """One Criteo line → column → value (missing values replaced as the module docstring says).

    Raises:
        common.InputError: not 40 columns, a label other than 0/1, or an integer column that is not an integer
            within int64.
    """
    fields = line.split('\t')
    if len(fields) != len(COLUMNS):
        raise common.InputError(path, number, None, f'expected {len(COLUMNS)} tab-separated columns (label, I1-I13, '
                                                    f'C1-C26), got {len(fields)}')
    if fields[0] not in ('0', '1'):
        raise common.InputError(path, number, 'label', f'label must be 0 or 1, got {fields[0]!r}')
    row = {LABEL: int(fields[0])}
    for name, text in zip(INTEGER_COLUMNS, fields[1:14]):
        row[name] = common.parse_int64(path, number, name, text) if text.strip() else MISSING_INTEGER
    for name, text in zip(CATEGORICAL_COLUMNS, fields[14:]):
        text = text.strip()
        row[name] = text or MISSING_TOKEN
    return row


def feature_spec(min_frequency: int) -> dict:
    """The feature spec (YAML structure) of the imported columns."""
    columns = {LABEL: {'kind': 'label'}}
    for name in INTEGER_COLUMNS:
        columns[name] = {'kind': 'numeric', 'dtype': 'int64', 'group': 'item', 'transform': 'log'}
    for name in CATEGORICAL_COLUMNS:
        columns[name] = {'kind': 'categorical', 'dtype': 'string', 'group': 'item',
                         'transform': {'type': 'vocabulary', 'min_frequency': min_frequency, 'num_oov_buckets': 1}}
    return {'name': 'criteo', 'description': 'Criteo display-ad click log (label, 13 integer and 26 hashed '
                                             'categorical features).',
            'defaults': {'embedding_dim': 8}, 'columns': columns}


def import_file(path: str, out_dir: str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                min_frequency: int = DEFAULT_MIN_FREQUENCY) -> dict:
    """Imports a Criteo file into ``out_dir`` (layout in :mod:`tfx_pipeline.importers.common`).

    Returns:
        The metadata written to ``metadata.json``.

    Raises:
        common.InputError: a malformed line (nothing is written then).
        ValueError: too few lines for the splits.

    Rows repeated across splits give a warning (``metadata['warnings']``; :class:`common.Duplicates`).
    """
    if min_frequency < 1:
        raise ValueError(f'min_frequency must be >= 1, got {min_frequency}')
    rows = 0
    duplicates = common.Duplicates(path)
    for number, line in common.open_lines(path):
        parse_line(path, number, line)
        duplicates.add(line)
        rows += 1
    sizes = common.split_sizes(rows, fractions, path)
    codes = common.split_codes(sizes, common.BY_ORDER, 0)
    duplicates.find(codes)
    dtypes = {LABEL: 'int64', **{n: 'int64' for n in INTEGER_COLUMNS}, **{n: 'string' for n in CATEGORICAL_COLUMNS}}
    with common.StagedOutput(out_dir) as out:
        common.write_spec(out.stage, f'Feature spec of {path}, written by tfx_pipeline.importers.criteo (choices in '
                          'its docstring).', feature_spec(min_frequency))
        writer = common.SplitWriter(out.stage, dtypes, LABEL)
        for split, number, line in duplicates.rows(codes, common.open_lines(path)):
            writer.write(split, parse_line(path, number, line))
        return common.write_metadata(out.stage, {
            'format': FORMAT, 'source': str(path), 'feature_spec': out.path(common.SPEC_FILE), 'rows': rows,
            'splits': writer.close(), 'split_method': common.BY_ORDER, 'fractions': list(fractions),
            'min_frequency': min_frequency, 'missing_integer': MISSING_INTEGER, 'missing_token': MISSING_TOKEN,
            'duplicates': duplicates.metadata(), 'warnings': duplicates.warnings()})
