"""Importer of the SASRec/BERT4Rec ``user item`` sequence files into leave-one-out next-item examples.

The time-ordered interaction files of the SASRec and BERT4Rec releases (``Beauty.txt``, ``ml-1m.txt``,
``Steam.txt``, …), for retrieval.

Format: one interaction a line, ``user item``, whitespace-separated ids (integers in those releases; any token
without whitespace is accepted). A user's lines are in time order; the lines of different users may interleave
(each user's own order is kept as it is in the file).

Examples, as SASRec (Kang & McAuley, 2018) and BERT4Rec (Sun et al., 2019) train and evaluate (leave-one-out):

* A user with items ``i_0 … i_{n-1}`` (time order) gives one example per position ``k ≥ 1``: the target
  ``item_id = i_k`` with the history ``hist_item_id = i_0 … i_{k-1}`` (oldest first), truncated to its most recent
  ``max_length`` items. The last item (``k = n − 1``) is the test example, the second-to-last (``k = n − 2``) the
  eval example, the earlier ones train: the test example's history thus includes the eval item, as in both papers.
* Position 0 gives no example: its history is empty, and the user is a key, not a feature, so the example would
  say nothing about the user (SASRec's training sequence likewise predicts ``i_1 … i_{n-1}`` from their prefixes).
* Users with fewer than ``MIN_ITEMS`` (3) items cannot give a test and an eval example each with a non-empty
  history; as in SASRec's ``data_partition``, all their interactions go to train (positions ``1 … n − 1``; a user
  with a single item gives no example at all). Both are counted in ``metadata.json`` (``short_users``,
  ``users_without_examples``). The releases are 5-cores, so there are none there.

Columns and spec choices:

* ``user_id`` (string): a key (never a model input) and the GAUC group.
* ``item_id`` (string, group ``item``) and ``hist_item_id`` (string id sequence, group ``behavior``) share one
  vocabulary, ``item_id``, hence one embedding table, so the target and the history items are embedded alike (as
  SASRec's shared item embedding). The vocabulary is Transform's, of the train split: an item first seen in a
  user's eval or test target is OOV (one OOV bucket). ``min_frequency`` (default 1) drops rarer items into it.
  Ids stay strings: ``007`` and ``7`` are different items.
* ``embedding_dim`` 50: SASRec's d for every data set.
* ``behavior.max_length`` (default 50: SASRec's and BERT4Rec's setting for Beauty and the other sparse Amazon and
  Steam sets, and that of the synthetic spec; for ``ml-1m.txt`` the papers used 200: pass ``max_length=200``).
  The history is truncated when written (not only in Transform), so the written data grow with
  ``rows · max_length``, not with ``rows · user length``.
* ``click`` = 1 on every row: every example is an observed interaction; the retrieval models train on positives
  (negatives are the other items, sampled by the model). Transform casts the label to float and analyses nothing on
  it, so a constant label is accepted; metadata's per-split ``ctr`` is 1.0.
* No timestamps in this format, hence no time-gap side information (:mod:`tfx_pipeline.importers.movielens` has
  them).

Passes: the first checks every line and counts each user's items (memory: one counter a user); the second writes
each line's example to its split (memory: the most recent ``max_length`` items of each user). Examples are
written in line order.
"""

import collections
import struct
from typing import Dict, Iterable, Optional, Sequence

from tfx_pipeline.importers import common

LABEL = 'click'
USER, ITEM = 'user', 'item'
DTYPES = {LABEL: 'int64', 'user_id': 'string', 'item_id': 'string', 'hist_item_id': 'string'}
MIN_ITEMS = 3              # a user needs this many items for an eval and a test example
DEFAULT_MAX_LENGTH = 50
DEFAULT_MIN_FREQUENCY = 1
EMBEDDING_DIM = 50         # SASRec's d
FORMAT = 'sequence'
_varint = common._varint  # pylint: disable=protected-access


def parse_line(path: str, number: int, line: str) -> Sequence[str]:
    """One line → ``(user, item)``.

    Raises:
        common.InputError: not two whitespace-separated fields.
    """
    fields = line.split()
    if len(fields) != 2:
        raise common.InputError(path, number, None, f'expected 2 whitespace-separated fields (user item), got '
                                                    f'{len(fields)}')
    return fields


def example_split(position: int, count: int) -> Optional[str]:
    """The split of the example whose target is a user's item at ``position`` (from 0) of ``count`` items in time
    order; None for position 0, which gives no example (module docstring)."""
    if position == 0:
        return None
    if count >= MIN_ITEMS:
        if position == count - 1:
            return 'test'
        if position == count - 2:
            return 'eval'
    return 'train'


def split_rows(counts: Iterable[int], path: str) -> Dict[str, int]:
    """Examples per split of users with these item counts; a ValueError when a split would be empty."""
    rows = dict.fromkeys(common.SPLITS, 0)
    for count in counts:
        if count >= MIN_ITEMS:
            rows['train'] += count - MIN_ITEMS
            rows['eval'] += 1
            rows['test'] += 1
        else:
            rows['train'] += max(count - 1, 0)
    if min(rows.values()) < 1:
        raise ValueError(f'{path}: the examples per split would be {rows}: every split needs one (a user with '
                         f'{MIN_ITEMS} or more items gives an eval and a test example; train needs a user with '
                         f'{MIN_ITEMS + 1} or more, or with 2)')
    return rows


def user_statistics(counts: Dict[object, int], max_length: int) -> dict:
    """Metadata on the users: their number, those with too few items, histories that were truncated."""
    return {
        'users': len(counts),
        'short_users': sum(1 for n in counts.values() if n < MIN_ITEMS),
        'users_without_examples': sum(1 for n in counts.values() if n < 2),
        'longest_history': max(counts.values()) - 1,
        'truncated_histories': sum(max(n - 1 - max_length, 0) for n in counts.values()),
    }


def choices() -> Dict[str, str]:
    """The choices (module docstring) in short, for metadata.json."""
    return {
        'split': 'leave-one-out per user: last item test, second-to-last eval, earlier train; history = the '
                 'earlier items, oldest first, the most recent max_length kept',
        'position_0': 'no example (empty history)',
        'short_users': f'users with fewer than {MIN_ITEMS} items: every example train (SASRec); a single-item user '
                       'gives none',
        'label': 'click = 1 on every row (positives only; implicit feedback)',
        'vocabulary': 'item_id and hist_item_id share vocabulary item_id (the train split\'s, Transform)',
    }


class RecordEncoder:
    """Serialised tf.Examples of rows whose values arrive already encoded as list elements.

    The bytes are those of :func:`common.serialize_example` (wire format there): a column's value is the
    concatenation of the encoded elements of its list (:meth:`element`), so a history is one ``b''.join`` of the
    elements of its items, encoded once per item rather than once per example it appears in.
    """

    def __init__(self, columns: Dict[str, str]):
        self.columns = dict(columns)
        self._keys = [(b'\x0a' + _varint(len(name.encode())) + name.encode(), dtype) for name, dtype in
                      self.columns.items()]

    @staticmethod
    def element(dtype: str, value) -> bytes:
        """One list element: a string's length-prefixed UTF-8, an integer's varint, a float's 4 bytes."""
        if dtype == 'string':
            encoded = value.encode()
            return b'\x0a' + _varint(len(encoded)) + encoded
        if dtype == 'int64':
            return common.int64_varint(value)
        return struct.pack('<f', value)

    def encode(self, values: Sequence[bytes]) -> bytes:
        """The serialised tf.Example; ``values[c]``: the joined elements of column ``c`` (in ``columns`` order)."""
        features = []
        for (key, dtype), payload in zip(self._keys, values):
            if dtype == 'string':
                tag, body = b'\x0a', payload
            else:
                tag = b'\x1a' if dtype == 'int64' else b'\x12'
                body = b'\x0a' + _varint(len(payload)) + payload if payload else b''
            feature = tag + _varint(len(body)) + body
            entry = key + b'\x12' + _varint(len(feature)) + feature
            features.append(b'\x0a' + _varint(len(entry)) + entry)
        joined = b''.join(features)
        return b'\x0a' + _varint(len(joined)) + joined


class RecordWriter(common.SplitWriter):
    """The split writer, for examples serialised by a :class:`RecordEncoder`."""

    def write_record(self, split: str, record: bytes, label: int) -> None:
        self._writers[split].write(record)
        self.rows[split] += 1
        self.positives[split] += label


def vocabulary_options(min_frequency: int, embedding_dim: int) -> dict:
    options = {'num_oov_buckets': 1, 'embedding_dim': embedding_dim}
    if min_frequency > 1:
        options['min_frequency'] = min_frequency
    return options


def feature_spec(min_frequency: int, max_length: int) -> dict:
    """The feature spec (YAML structure) of the imported columns."""
    vocabulary = {'type': 'vocabulary', 'vocabulary': 'item_id'}
    columns = {
        'user_id': {'kind': 'key', 'dtype': 'string'},
        'item_id': {'kind': 'categorical', 'dtype': 'string', 'group': 'item', 'transform': dict(vocabulary)},
        'hist_item_id': {'kind': 'id_sequence', 'dtype': 'string', 'group': 'behavior',
                         'transform': dict(vocabulary)},
        LABEL: {'kind': 'label'},
    }
    return {'name': 'sequence', 'description': 'Leave-one-out next-item examples of a SASRec/BERT4Rec interaction '
                                               'file: the target item and the user\'s earlier items.',
            'gauc_group': 'user_id', 'behavior': {'max_length': max_length, 'length_feature': 'hist_length'},
            'vocabularies': {'item_id': vocabulary_options(min_frequency, EMBEDDING_DIM)}, 'columns': columns}


def import_file(path: str, out_dir: str, max_length: int = DEFAULT_MAX_LENGTH,
                min_frequency: int = DEFAULT_MIN_FREQUENCY) -> dict:
    """Imports a SASRec/BERT4Rec ``user item`` file into ``out_dir`` (layout in
    :mod:`tfx_pipeline.importers.common`).

    Returns:
        The metadata written to ``metadata.json``.

    Raises:
        common.InputError: a malformed line (nothing is written then).
        ValueError: a split would be empty, or a bad option (nothing is written then).
    """
    if min_frequency < 1 or max_length < 1:
        raise ValueError(f'min_frequency and max_length must be >= 1, got {min_frequency} and {max_length}')
    counts: Dict[str, int] = collections.Counter()
    items = set()
    interactions = 0
    for number, line in common.open_lines(path):
        user, item = parse_line(path, number, line)
        counts[user] += 1
        items.add(item)
        interactions += 1
    rows = split_rows(counts.values(), path)
    with common.StagedOutput(out_dir) as out:
        common.write_spec(out.stage, f'Feature spec of {path}, written by tfx_pipeline.importers.sequence '
                          '(choices in its docstring).', feature_spec(min_frequency, max_length))
        encoder = RecordEncoder(DTYPES)
        writer = RecordWriter(out.stage, DTYPES, LABEL)
        label = RecordEncoder.element('int64', 1)
        elements: Dict[str, bytes] = {}           # item → its encoded element, shared by every history holding it
        histories: Dict[str, collections.deque] = {}   # user → encoded elements of the most recent items
        positions: Dict[str, int] = collections.Counter()  # user → items seen so far
        for number, line in common.open_lines(path):
            user, item = parse_line(path, number, line)
            element = elements.get(item)
            if element is None:
                element = elements[item] = RecordEncoder.element('string', item)
            history = histories.get(user)
            if history is None:
                history = histories[user] = collections.deque(maxlen=max_length)
            split = example_split(positions[user], counts[user])
            if split is not None:
                user_element = RecordEncoder.element('string', user)
                writer.write_record(split, encoder.encode((label, user_element, element, b''.join(history))), 1)
            history.append(element)
            positions[user] += 1
        splits = writer.close()
        assert {name: splits[name]['rows'] for name in common.SPLITS} == rows, (splits, rows)
        return common.write_metadata(out.stage, {
            'format': FORMAT, 'source': str(path), 'feature_spec': out.path(common.SPEC_FILE),
            'rows': sum(rows.values()),
            'splits': splits, 'interactions': interactions, 'items': len(items), **user_statistics(counts, max_length),
            'max_length': max_length, 'min_frequency': min_frequency, 'min_items': MIN_ITEMS, 'choices': choices()})
