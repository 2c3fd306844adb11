"""Importer of the Amazon review click data of the DIN and DIEN experiments (``local_train_splitByUser``,
``local_test_splitByUser`` of the DIEN release).

Format: one impression a line, 6 tab-separated columns
``label  user  item  category  item_history  category_history``:

* ``label``: 1 (the item the user reviewed next) or 0 (a sampled item) → the label column ``click``.
* ``user``, ``item``, ``category``: string ids (``A1ZKR…``, ``B00…``, ``Books``).
* ``item_history``, ``category_history``: the user's earlier reviewed items and their categories, oldest first,
  separated by the control character ``\\x02`` (``HISTORY_SEPARATOR``); both lists have the same length.

Choices:

* Ids stay strings; item and history items share one vocabulary (``item_id``), category and history categories
  another (``category``), as DIN shares the target's and the behaviours' embeddings. ``min_frequency`` (default 1)
  applies to both; rarer ids fall into one OOV bucket.
* The histories keep their most recent ``max_length`` steps (default 100, the ``maxlen`` of the DIEN release);
  an empty history is allowed (both lists empty).
* The user id is a key (never a feature, as in DIN's Amazon experiments, which describe the user by behaviours)
  and the GAUC group.
* Groups: ``item_id`` and ``category`` are the item (the candidate of the ``rank`` signature); the histories are
  the behaviour group, the context of a request.
* Split: by line order by default (80/10/10 train/eval/test: the DIEN files are already split by user, so a
  ``local_train_splitByUser`` file imports as train and a held-out tail) or at random with a seed.
* There are no timestamps in this format, hence no time-gap or behaviour-type side information.
"""

from typing import Dict, Sequence

from tfx_pipeline.importers import common

LABEL = 'click'
HISTORY_SEPARATOR = '\x02'
COLUMNS = (LABEL, 'user_id', 'item_id', 'category', 'hist_item_id', 'hist_category')
DTYPES = {LABEL: 'int64', 'user_id': 'string', 'item_id': 'string', 'category': 'string',
          'hist_item_id': 'string', 'hist_category': 'string'}
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
DEFAULT_MIN_FREQUENCY = 1
DEFAULT_MAX_LENGTH = 100
FORMAT = 'amazon'


def parse_line(path: str, number: int, line: str) -> Dict[str, object]:
    """One line → column → value (histories as lists).

    Raises:
        common.InputError: not 6 columns, a label other than 0/1, an empty id, or histories of different lengths.
    """
    fields = line.split('\t')
    if len(fields) != len(COLUMNS):
        raise common.InputError(path, number, None, f'expected {len(COLUMNS)} tab-separated columns (label, user, '
                                                    f'item, category, item history, category history), got '
                                                    f'{len(fields)}')
    if fields[0] not in ('0', '1'):
        raise common.InputError(path, number, 'label', f'label must be 0 or 1, got {fields[0]!r}')
    row = {LABEL: int(fields[0])}
    for name, text in zip(COLUMNS[1:4], fields[1:4]):
        if not text.strip():
            raise common.InputError(path, number, name, 'empty id')
        row[name] = text.strip()
    for name, text in zip(COLUMNS[4:], fields[4:]):
        row[name] = text.split(HISTORY_SEPARATOR) if text else []
        if any(not step.strip() for step in row[name]):
            raise common.InputError(path, number, name, f'an empty id in the {HISTORY_SEPARATOR!r}-separated history')
    if len(row['hist_item_id']) != len(row['hist_category']):
        raise common.InputError(path, number, 'hist_category', f"{len(row['hist_category'])} categories for "
                                                               f"{len(row['hist_item_id'])} history items")
    return row


def feature_spec(min_frequency: int, max_length: int) -> dict:
    """The feature spec (YAML structure) of the imported columns."""
    vocabulary = {'num_oov_buckets': 1, 'embedding_dim': 18}  # 18: the DIN/DIEN releases' embedding width
    if min_frequency > 1:
        vocabulary['min_frequency'] = min_frequency
    columns = {
        'user_id': {'kind': 'key', 'dtype': 'string'},
        'item_id': {'kind': 'categorical', 'dtype': 'string', 'group': 'item',
                    'transform': {'type': 'vocabulary', 'vocabulary': 'item_id'}},
        'category': {'kind': 'categorical', 'dtype': 'string', 'group': 'item',
                     'transform': {'type': 'vocabulary', 'vocabulary': 'category'}},
        'hist_item_id': {'kind': 'id_sequence', 'dtype': 'string', 'group': 'behavior',
                         'transform': {'type': 'vocabulary', 'vocabulary': 'item_id'}},
        'hist_category': {'kind': 'id_sequence', 'dtype': 'string', 'group': 'behavior',
                          'transform': {'type': 'vocabulary', 'vocabulary': 'category'}},
        LABEL: {'kind': 'label'},
    }
    return {'name': 'amazon', 'description': 'Amazon review clicks of the DIN/DIEN experiments: target item and '
                                             'category, the user\'s reviewed items and categories.',
            'gauc_group': 'user_id', 'behavior': {'max_length': max_length, 'length_feature': 'hist_length'},
            'vocabularies': {'item_id': dict(vocabulary), 'category': dict(vocabulary)}, 'columns': columns}


def import_file(path: str, out_dir: str, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                min_frequency: int = DEFAULT_MIN_FREQUENCY, max_length: int = DEFAULT_MAX_LENGTH,
                split_method: str = common.BY_ORDER, seed: int = 0) -> dict:
    """Imports an Amazon (DIN/DIEN) file into ``out_dir`` (layout in :mod:`tfx_pipeline.importers.common`).

    Returns:
        The metadata written to ``metadata.json``.

    Raises:
        common.InputError: a malformed line (nothing is written then).
        ValueError: too few lines for the splits, or a bad option.
    """
    if min_frequency < 1 or max_length < 1:
        raise ValueError(f'min_frequency and max_length must be >= 1, got {min_frequency} and {max_length}')
    if split_method not in common.SPLIT_METHODS:
        raise ValueError(f'unknown split method {split_method!r}; known: {", ".join(common.SPLIT_METHODS)}')
    rows = longest = 0
    for number, line in common.open_lines(path):
        longest = max(longest, len(parse_line(path, number, line)['hist_item_id']))
        rows += 1
    sizes = common.split_sizes(rows, fractions, path)
    spec_path = common.write_spec(out_dir, f'Feature spec of {path}, written by tfx_pipeline.importers.amazon '
                                  '(choices in its docstring).', feature_spec(min_frequency, max_length))
    writer = common.SplitWriter(out_dir, DTYPES, LABEL)
    for split, (number, line) in zip(common.split_assignment(sizes, split_method, seed), common.open_lines(path)):
        writer.write(split, parse_line(path, number, line))
    return common.write_metadata(out_dir, {
        'format': FORMAT, 'source': str(path), 'feature_spec': spec_path, 'rows': rows, 'splits': writer.close(),
        'split_method': split_method, 'fractions': list(fractions), 'seed': seed, 'min_frequency': min_frequency,
        'max_length': max_length, 'longest_history': longest})
