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

Checks beyond one line's: histories written with another separator than ``\\x02`` (``|``, ``,``, ``;``, a space,
…) would each import as one unknown id. When no history of the file has more than one step and most non-empty
histories hold one same such character, the import fails naming the first line and column holding it; when no
history has more than one step otherwise, a warning says so (``metadata['warnings']``). Rows repeated across splits
give a warning too (:class:`common.Duplicates`).
"""

from typing import Dict, List, Sequence

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
OTHER_SEPARATORS = ('|', ',', ';', ' ', '/', '\x01', '\x03', '\x1f')   # what a mis-written history may use


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
    duplicates = common.Duplicates(path)
    separators = SeparatorCheck(path)
    for number, line in common.open_lines(path):
        row = parse_line(path, number, line)
        longest = max(longest, len(row['hist_item_id']))
        separators.add(number, row)
        duplicates.add(line)
        rows += 1
    sizes = common.split_sizes(rows, fractions, path)
    warnings = separators.check(longest)
    codes = common.split_codes(sizes, split_method, seed)
    duplicates.find(codes)
    with common.StagedOutput(out_dir) as out:
        common.write_spec(out.stage, f'Feature spec of {path}, written by tfx_pipeline.importers.amazon (choices in '
                          'its docstring).', feature_spec(min_frequency, max_length))
        writer = common.SplitWriter(out.stage, DTYPES, LABEL)
        for split, number, line in duplicates.rows(codes, common.open_lines(path)):
            writer.write(split, parse_line(path, number, line))
        return common.write_metadata(out.stage, {
            'format': FORMAT, 'source': str(path), 'feature_spec': out.path(common.SPEC_FILE), 'rows': rows,
            'splits': writer.close(), 'split_method': split_method, 'fractions': list(fractions), 'seed': seed,
            'min_frequency': min_frequency, 'max_length': max_length, 'longest_history': longest,
            'duplicates': duplicates.metadata(), 'warnings': warnings + duplicates.warnings()})


class SeparatorCheck:
    """Finds histories written with another separator than ``HISTORY_SEPARATOR`` (module docstring)."""

    def __init__(self, path: str):
        self._path = path
        self._histories = 0                      # non-empty item histories
        self._holding: Dict[str, int] = {}      # candidate separator → histories holding it
        self._first: Dict[str, tuple] = {}      # candidate separator → (line, column) of its first history

    def add(self, number: int, row: Dict[str, object]) -> None:
        for column in ('hist_item_id', 'hist_category'):
            if len(row[column]) != 1:
                continue
            if column == 'hist_item_id':
                self._histories += 1
            for separator in OTHER_SEPARATORS:
                if separator in row[column][0]:
                    if column == 'hist_item_id':
                        self._holding[separator] = self._holding.get(separator, 0) + 1
                    self._first.setdefault(separator, (number, column))

    def check(self, longest: int) -> List[str]:
        """The warnings (every history at most one step); raises when a wrong separator is evident.

        Raises:
            common.InputError: no history has two steps and over half the non-empty histories hold one same
                other separator (naming the first line and column holding it).
        """
        if longest > 1 or not self._histories:
            return []
        for separator, count in sorted(self._holding.items(), key=lambda item: -item[1]):
            if count > self._histories / 2:
                number, column = self._first[separator]
                raise common.InputError(self._path, number, column, f'no history has more than one step, and '
                                        f'{count} of the {self._histories} histories hold {separator!r}: the format '
                                        f'separates history steps with {HISTORY_SEPARATOR!r} (Ctrl-B); rewrite the '
                                        f"separator (e.g. tr '{separator}' '\\002' < FILE) or check the column order")
        return [f'{self._path}: no history has more than one step ({self._histories} non-empty histories): if the '
                f'histories are longer, their steps must be separated by {HISTORY_SEPARATOR!r} (Ctrl-B)']
