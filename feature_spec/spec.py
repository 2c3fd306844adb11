"""The declarative feature spec: YAML → typed, validated Python objects.

One YAML file per data set describes every column (see ``feature_spec/specs/synthetic.yaml``):

.. code-block:: yaml

    name: synthetic_clicks
    defaults: {embedding_dim: 16}
    behavior:
      max_length: 50
      length_feature: hist_length
      sessions: {time: hist_time, gap_seconds: 1800, max_sessions: 5, max_length: 10}   # DSIN's sessions
    auxiliary:                          # groups only the models that ask for them read (DSTN's auxiliary ads)
      unclicked: {max_length: 20, length_feature: unclicked_length}
    vocabularies:                       # shared vocabularies: one table for several columns
      item_id: {min_frequency: 2, num_oov_buckets: 20, embedding_dim: 16}
    columns:
      item_id:      {kind: categorical, group: item, transform: {type: vocabulary, vocabulary: item_id}}
      hist_item_id: {kind: id_sequence, group: behavior, transform: {type: vocabulary, vocabulary: item_id}}
      hist_time_gap: {source: hist_time, kind: timestamp, sequence: true, group: behavior,
                      transform: {type: time_gap, reference: request_time}}
      unclicked_item_id: {kind: id_sequence, group: unclicked, transform: {type: vocabulary, vocabulary: item_id}}
      click:        {kind: label}
      position:     {kind: position, transform: vocabulary}          # training only, like privileged columns
      page_dwell:   {kind: privileged, transform: log}
    crosses:                            # Wide&Deep's wide part: hashed cross products of categorical features
      age_x_category: {columns: [age_bucket, category], hash_buckets: 1000}
    label_roles:                        # which label plays which role for the multi-task models
      {click: click, conversion: purchase, relevance: click_if_examined}
    negative_sampling_rate: 0.1         # the training data kept 10% of its negatives: served scores are calibrated

The key of a column entry is the name of the transformed output; ``source`` names the raw column (default: the
key), so one raw column can feed several outputs. ``position`` and ``privileged`` columns are model inputs at training
time only (:attr:`Column.training_only`): never served. ``label_roles`` names the label (or, for evaluation only, the
ground-truth column) a model asks for by role: ``click`` is the first label unless named. A column of an
``auxiliary`` group is left out of
:attr:`ModelInputs.fields <feature_spec.model_inputs.ModelInputs.fields>` (the inputs every model reads) and put in
:attr:`ModelInputs.auxiliary <feature_spec.model_inputs.ModelInputs.auxiliary>`, so adding one changes no model
that does not ask for it; its sequences keep the group's ``max_length`` and write their length to the group's
``length_feature``. Everything is checked when the spec is loaded: an unknown kind,
transform, option, group or vocabulary, or a reference to a column that does not exist, raises
:class:`SpecError` naming the offending field, before any pipeline work starts.
"""

import dataclasses
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml

from feature_spec import model_inputs

# Column kinds.
CATEGORICAL = 'categorical'
NUMERIC = 'numeric'
ID_SEQUENCE = 'id_sequence'
TIMESTAMP = 'timestamp'
LABEL = 'label'
POSITION = 'position'
WEIGHT = 'weight'
GROUND_TRUTH = 'ground_truth'
KEY = 'key'
PRIVILEGED = 'privileged'
KINDS = (CATEGORICAL, NUMERIC, ID_SEQUENCE, TIMESTAMP, LABEL, POSITION, PRIVILEGED, WEIGHT, GROUND_TRUTH, KEY)

# Model inputs known at training time only: the position an item was shown at, and privileged features (known
# only after the fact, e.g. a reading of the dwell on the item page). They reach the model through
# ``ModelInputs.training_only``, never the serving signature.
TRAINING_ONLY_KINDS = (POSITION, PRIVILEGED)
# Kinds that are never sent to a served model.
NON_SERVING_KINDS = (LABEL, POSITION, PRIVILEGED, WEIGHT, GROUND_TRUTH, KEY)
# Kinds whose column becomes a model input through its transform (a timestamp only when it has one).
FEATURE_KINDS = (CATEGORICAL, NUMERIC, ID_SEQUENCE, TIMESTAMP, POSITION, PRIVILEGED)

# Transforms and the options each accepts (option → default; REQUIRED marks a mandatory option).
REQUIRED = object()
TRANSFORMS: Dict[str, Dict[str, Any]] = {
    # Vocabulary of the training data; OOV values hash into num_oov_buckets extra rows.
    'vocabulary': {'vocabulary': None, 'top_k': None, 'min_frequency': None, 'num_oov_buckets': 1,
                   'embedding_dim': None},
    # Hash of the value into a fixed number of buckets.
    'hash': {'buckets': REQUIRED},
    # Bucket by explicit boundaries, or by num_buckets quantiles of the training data.
    'bucketize': {'boundaries': None, 'num_buckets': None},
    # log(1 + max(x, 0)) then z-score with training mean and variance.
    'log': {},
    # z-score with training mean and variance.
    'zscore': {},
    # ATRank's log2 time-gap buckets of (reference time − behaviour time), in seconds.
    'time_gap': {'reference': REQUIRED, 'num_buckets': 24},
}
# Transforms whose output is an id looked up in an embedding table; the rest give numbers.
ID_TRANSFORMS = ('vocabulary', 'hash', 'bucketize', 'time_gap')
VOCABULARY_OPTIONS = ('top_k', 'min_frequency', 'num_oov_buckets', 'embedding_dim')
TRANSFORMS_BY_KIND = {
    CATEGORICAL: ('vocabulary', 'hash', 'bucketize'),
    NUMERIC: ('log', 'zscore', 'bucketize'),
    ID_SEQUENCE: ('vocabulary', 'hash'),
    TIMESTAMP: ('time_gap',),
    POSITION: ('vocabulary', 'bucketize'),
    PRIVILEGED: ('log', 'zscore', 'bucketize', 'vocabulary', 'hash'),
}
DTYPES = ('int64', 'float32', 'string')
DEFAULT_DTYPE = {CATEGORICAL: 'int64', NUMERIC: 'float32', ID_SEQUENCE: 'int64', TIMESTAMP: 'int64',
                 LABEL: 'int64', POSITION: 'int64', PRIVILEGED: 'float32', WEIGHT: 'float32', GROUND_TRUTH: 'float32',
                 KEY: 'int64'}
CLICK_ROLE = 'click'   # the role of the primary label, which every ranking model predicts
COLUMN_OPTIONS = ('kind', 'group', 'source', 'transform', 'embedding_dim', 'sequence', 'dtype', 'description')


class SpecError(ValueError):
    """A feature spec that cannot be used; the message names the file and the field."""


@dataclasses.dataclass(frozen=True)
class Transform:
    type: str
    options: Mapping[str, Any]

    def __getitem__(self, option: str) -> Any:
        return self.options[option]


@dataclasses.dataclass(frozen=True)
class Column:
    """One output of Transform, computed from one raw column (``source``)."""
    name: str
    kind: str
    source: str
    dtype: str
    group: Optional[str] = None
    transform: Optional[Transform] = None
    embedding_dim: Optional[int] = None
    sequence: bool = False
    description: str = ''

    @property
    def is_feature(self) -> bool:
        """Whether the column becomes a model input (positions are, but only in training)."""
        return self.kind in FEATURE_KINDS and self.transform is not None

    @property
    def training_only(self) -> bool:
        """Whether the column is a model input at training time only (a position or a privileged feature)."""
        return self.kind in TRAINING_ONLY_KINDS

    @property
    def is_id(self) -> bool:
        return self.transform is not None and self.transform.type in ID_TRANSFORMS

    @property
    def vocabulary(self) -> Optional[str]:
        """Name of the vocabulary (and embedding table) this column's ids come from."""
        if self.transform is None or self.transform.type != 'vocabulary':
            return None
        return self.transform.options.get('vocabulary') or self.name


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A vocabulary computed over the union of the raw values of every column that uses it."""
    name: str
    top_k: Optional[int] = None
    min_frequency: Optional[int] = None
    num_oov_buckets: int = 1
    embedding_dim: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class Sessions:
    """DSIN's session division of the behaviour sequences (``behavior.sessions``): a gap of more than
    ``gap_seconds`` between two behaviours of the raw timestamp list ``time`` starts a session; the most recent
    ``max_sessions`` sessions are kept, each with its most recent ``max_length`` behaviours. Transform writes every
    sequence feature ``<name>`` again as ``<name>_sessions`` ``[max_sessions · max_length]`` (session k's steps at
    k · max_length …, sessions oldest first, steps oldest first, padded with 0) and the kept steps per session to
    ``length_feature`` ``[max_sessions]``."""
    time: str
    gap_seconds: int
    max_sessions: int
    max_length: int
    length_feature: str

    def feature(self, sequence: str) -> str:
        """The name of the session-shaped version of the sequence feature ``sequence``."""
        return f'{sequence}_sessions'


@dataclasses.dataclass(frozen=True)
class Behavior:
    """The behaviour sequences: all id sequences keep the most recent ``max_length`` steps; ``sessions`` (optional)
    also divides them into sessions."""
    max_length: int
    length_feature: str
    sessions: Optional[Sessions] = None


@dataclasses.dataclass(frozen=True)
class AuxiliaryGroup:
    """A group of inputs outside the shared groups (``auxiliary.<name>``): only the models that ask for it read it.
    Its id sequences keep their most recent ``max_length`` steps; their valid length is written to
    ``length_feature``."""
    name: str
    max_length: int
    length_feature: str
    description: str = ''


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    name: str
    columns: Tuple[Column, ...]
    vocabularies: Mapping[str, Vocabulary]
    behavior: Optional[Behavior]
    default_embedding_dim: int
    gauc_group: Optional[str] = None
    # The key that groups one request's impressions (NDCG per request).
    request_group: Optional[str] = None
    crosses: Tuple[model_inputs.FeatureCross, ...] = ()
    auxiliary: Tuple[AuxiliaryGroup, ...] = ()
    label_roles: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # w: the rate at which the training data's negatives were kept (1: not down-sampled); served probabilities are
    # calibrated back, q = p / (p + (1 − p) / w).
    negative_sampling_rate: float = 1.0
    path: str = '<memory>'

    def __getitem__(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f'{self.path}: no column named {name!r}')

    def of_kind(self, *kinds: str) -> Tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind in kinds)

    @property
    def features(self) -> Tuple[Column, ...]:
        return tuple(c for c in self.columns if c.is_feature)

    def sequence_groups(self) -> Dict[str, Tuple[int, str]]:
        """``{group: (max_length, length_feature)}`` of the behaviour group and every auxiliary group."""
        groups = {g.name: (g.max_length, g.length_feature) for g in self.auxiliary}
        if self.behavior is not None:
            groups[model_inputs.BEHAVIOR] = (self.behavior.max_length, self.behavior.length_feature)
        return groups

    @property
    def auxiliary_names(self) -> Tuple[str, ...]:
        return tuple(g.name for g in self.auxiliary)

    def max_length(self, column: Column) -> int:
        """The number of steps a sequence column keeps: its group's ``max_length``."""
        return self.sequence_groups()[column.group or model_inputs.BEHAVIOR][0]

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.of_kind(LABEL))

    @property
    def roles(self) -> Dict[str, str]:
        """``{role: label column}``: the spec's ``label_roles``, with ``click`` the primary label unless named."""
        return {CLICK_ROLE: self.labels[0], **self.label_roles}

    def label_for(self, role: str) -> str:
        """The label column that plays ``role``; SpecError naming the ``label_roles`` section when none does."""
        try:
            return self.roles[role]
        except KeyError:
            raise SpecError(f'{self.path}: label_roles.{role}: no label is given the role {role!r} (roles: '
                            f'{self.roles})') from None

    @property
    def raw_columns(self) -> Tuple[str, ...]:
        """Every raw column the spec reads, once each, in spec order."""
        return tuple(dict.fromkeys(
            [c.source for c in self.columns] +
            [c.transform['reference'] for c in self.columns if c.transform and c.transform.type == 'time_gap']))

    @property
    def serving_columns(self) -> Tuple[str, ...]:
        """The raw columns a served model needs: the sources of every feature, less training-only ones."""
        needed = [c for c in self.columns if c.is_feature and not c.training_only]
        names = [c.source for c in needed]
        names += [c.transform['reference'] for c in needed if c.transform.type == 'time_gap']
        return tuple(dict.fromkeys(names))

    @property
    def candidate_columns(self) -> Tuple[str, ...]:
        """The raw serving columns that describe a candidate item (sources of the ``item`` group's features); the
        other serving columns describe the user and the request (the ``rank`` signature's context).

        Raises:
            SpecError: a raw column feeds both an item feature and a feature of another group.
        """
        needed = [c for c in self.columns if c.is_feature and not c.training_only]
        items = tuple(dict.fromkeys(c.source for c in needed if c.group == model_inputs.ITEM))
        for column in needed:
            if column.group != model_inputs.ITEM and column.source in items:
                raise SpecError(f'{self.path}: columns.{column.name}: reads {column.source!r}, a column of the '
                                f'item group, but belongs to the {column.group} group')
        return items

    @property
    def context_columns(self) -> Tuple[str, ...]:
        """The raw serving columns that are not :attr:`candidate_columns`."""
        items = self.candidate_columns
        return tuple(name for name in self.serving_columns if name not in items)

    def embedding_dim(self, column: Column) -> int:
        vocabulary = self.vocabularies.get(column.vocabulary) if column.vocabulary else None
        for dim in (vocabulary.embedding_dim if vocabulary else None, column.embedding_dim):
            if dim:
                return dim
        return self.default_embedding_dim


def load(path: str) -> FeatureSpec:
    """Reads and validates a spec file; raises SpecError naming the field at fault."""
    if not os.path.exists(path):
        raise SpecError(f'feature spec file not found: {path}')
    with open(path) as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise SpecError(f'{path}: not valid YAML: {e}') from e
    return parse(raw, path)


def parse(raw: Mapping[str, Any], path: str = '<memory>') -> FeatureSpec:
    """Builds a FeatureSpec from the YAML structure; raises SpecError naming the field at fault."""
    if not isinstance(raw, Mapping):
        raise SpecError(f'{path}: a feature spec is a mapping with "name" and "columns"')
    _check_keys(raw, ('name', 'description', 'defaults', 'behavior', 'auxiliary', 'vocabularies', 'columns',
                      'gauc_group', 'request_group', 'crosses', 'label_roles', 'negative_sampling_rate'), path,
                'top level')
    defaults = raw.get('defaults') or {}
    _check_keys(defaults, ('embedding_dim',), path, 'defaults')
    default_dim = _positive_int(defaults.get('embedding_dim', 8), path, 'defaults.embedding_dim')
    vocabularies = {name: _parse_vocabulary(name, options or {}, path)
                    for name, options in (raw.get('vocabularies') or {}).items()}
    columns_raw = raw.get('columns')
    if not isinstance(columns_raw, Mapping) or not columns_raw:
        raise SpecError(f'{path}: "columns" must be a non-empty mapping of column name to its description')
    auxiliary = tuple(_parse_auxiliary(name, options, path) for name, options in _mapping(raw.get('auxiliary'), path,
                                                                                           'auxiliary'))
    groups = model_inputs.GROUPS + tuple(g.name for g in auxiliary)
    columns = tuple(_parse_column(name, options, path, groups) for name, options in columns_raw.items())
    behavior = None
    if raw.get('behavior') is not None:
        _check_keys(raw['behavior'], ('max_length', 'length_feature', 'sessions'), path, 'behavior')
        behavior = Behavior(max_length=_positive_int(raw['behavior'].get('max_length'), path, 'behavior.max_length'),
                            length_feature=str(raw['behavior'].get('length_feature', 'hist_length')),
                            sessions=_parse_sessions(raw['behavior'].get('sessions'), path))
    spec = FeatureSpec(name=str(raw.get('name', os.path.basename(path))), columns=columns,
                       gauc_group=raw.get('gauc_group'), request_group=raw.get('request_group'),
                       vocabularies=_complete_vocabularies(columns, vocabularies, path), behavior=behavior,
                       default_embedding_dim=default_dim, auxiliary=auxiliary, path=path,
                       label_roles=dict(_mapping(raw.get('label_roles'), path, 'label_roles')),
                       negative_sampling_rate=_rate(raw.get('negative_sampling_rate', 1.0), path))
    _check_references(spec)
    crosses = tuple(_parse_cross(spec, name, options)
                    for name, options in _mapping(raw.get('crosses'), path, 'crosses'))
    return dataclasses.replace(spec, crosses=crosses)


def _parse_sessions(raw: Any, path: str) -> Optional[Sessions]:
    if raw is None:
        return None
    where = 'behavior.sessions'
    _check_keys(raw, ('time', 'gap_seconds', 'max_sessions', 'max_length', 'length_feature'), path, where)
    if not isinstance(raw.get('time'), str):
        raise SpecError(f'{path}: {where}.time must name the raw timestamp list of the behaviours')
    return Sessions(time=raw['time'], gap_seconds=_positive_int(raw.get('gap_seconds', 1800), path,
                                                                 f'{where}.gap_seconds'),
                    max_sessions=_positive_int(raw.get('max_sessions'), path, f'{where}.max_sessions'),
                    max_length=_positive_int(raw.get('max_length'), path, f'{where}.max_length'),
                    length_feature=str(raw.get('length_feature', 'session_lengths')))


def _parse_auxiliary(name: str, raw: Any, path: str) -> AuxiliaryGroup:
    where = f'auxiliary.{name}'
    _check_keys(raw, ('max_length', 'length_feature', 'description'), path, where)
    if name in model_inputs.GROUPS:
        raise SpecError(f'{path}: {where}: {name!r} is a shared group; name the auxiliary group otherwise')
    if not isinstance(raw.get('length_feature'), str):
        raise SpecError(f'{path}: {where}.length_feature must name the feature that gets the sequences\' length')
    return AuxiliaryGroup(name=name, max_length=_positive_int(raw.get('max_length'), path, f'{where}.max_length'),
                          length_feature=raw['length_feature'], description=str(raw.get('description', '')))


def _mapping(value: Any, path: str, where: str):
    """The items of an optional mapping section (absent or empty: none)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise SpecError(f'{path}: {where} must be a mapping')
    return tuple(value.items())


def crossable(column: Column) -> bool:
    """Whether a column can be part of a feature cross: a served, non-sequence feature of a shared group with one id
    per example."""
    return (column.is_feature and column.is_id and not column.sequence and not column.training_only
            and column.group in model_inputs.GROUPS)


def _parse_cross(spec: FeatureSpec, name: str, options: Any) -> model_inputs.FeatureCross:
    where = f'crosses.{name}'
    _check_keys(options, ('columns', 'hash_buckets'), spec.path, where)
    columns = options.get('columns')
    if not isinstance(columns, list) or len(columns) < 2 or len(set(columns)) != len(columns):
        raise SpecError(f'{spec.path}: {where}.columns must list two or more distinct columns, got {columns!r}')
    features = {c.name: c for c in spec.features}
    for column in columns:
        if column not in features:
            raise SpecError(f'{spec.path}: {where}.columns: {column!r} is not a feature column of the spec')
        if not crossable(features[column]):
            raise SpecError(f'{spec.path}: {where}.columns: {column!r} is not a categorical feature with one id per '
                            'example of a shared group (a sequence, a number, a position or an auxiliary input cannot be '
                            'crossed)')
    if name in features:
        raise SpecError(f'{spec.path}: {where}: the name clashes with a column')
    return model_inputs.FeatureCross(name, tuple(columns),
                                     _positive_int(options.get('hash_buckets'), spec.path, f'{where}.hash_buckets'))


def _parse_vocabulary(name: str, options: Mapping[str, Any], path: str) -> Vocabulary:
    _check_keys(options, VOCABULARY_OPTIONS, path, f'vocabularies.{name}')
    return Vocabulary(name=name, **options)


def _parse_column(name: str, options: Any, path: str, groups: Tuple[str, ...] = model_inputs.GROUPS) -> Column:
    where = f'columns.{name}'
    if not isinstance(options, Mapping):
        raise SpecError(f'{path}: {where} must be a mapping with at least "kind"')
    _check_keys(options, COLUMN_OPTIONS, path, where)
    kind = options.get('kind')
    if kind not in KINDS:
        raise SpecError(f'{path}: {where}.kind: unknown kind {kind!r}; known kinds: {", ".join(KINDS)}')
    dtype = options.get('dtype', DEFAULT_DTYPE[kind])
    if dtype not in DTYPES:
        raise SpecError(f'{path}: {where}.dtype: unknown dtype {dtype!r}; known: {", ".join(DTYPES)}')
    transform = _parse_transform(kind, options.get('transform'), path, where)
    group = options.get('group')
    if transform is not None and kind not in TRAINING_ONLY_KINDS and group not in groups:
        raise SpecError(f'{path}: {where}.group: {group!r} is not one of {", ".join(groups)}')
    sequence = bool(options.get('sequence', kind == ID_SEQUENCE))
    if sequence and group in model_inputs.GROUPS and group != model_inputs.BEHAVIOR:
        raise SpecError(f'{path}: {where}: sequences belong to the behavior group or an auxiliary group, '
                        f'not {group!r}')
    dim = options.get('embedding_dim')
    return Column(name=name, kind=kind, source=str(options.get('source', name)), dtype=dtype, group=group,
                  transform=transform, sequence=sequence, description=str(options.get('description', '')),
                  embedding_dim=None if dim is None else _positive_int(dim, path, f'{where}.embedding_dim'))


def _parse_transform(kind: str, raw: Any, path: str, where: str) -> Optional[Transform]:
    if kind not in FEATURE_KINDS:
        if raw is not None:
            raise SpecError(f'{path}: {where}.transform: a {kind} column takes no transform')
        return None
    if raw is None and kind == TIMESTAMP:
        return None  # a plain timestamp: the reference of time gaps, not itself a model input
    if isinstance(raw, str):
        raw = {'type': raw}
    if not isinstance(raw, Mapping) or 'type' not in raw:
        raise SpecError(f'{path}: {where}.transform: a {kind} column needs a transform with a "type" '
                        f'(one of {", ".join(TRANSFORMS_BY_KIND[kind])})')
    kind_of = raw['type']
    if kind_of not in TRANSFORMS:
        raise SpecError(f'{path}: {where}.transform.type: unknown transform {kind_of!r}; '
                        f'known transforms: {", ".join(TRANSFORMS)}')
    if kind_of not in TRANSFORMS_BY_KIND[kind]:
        raise SpecError(f'{path}: {where}.transform.type: {kind_of!r} does not apply to a {kind} column '
                        f'(use one of {", ".join(TRANSFORMS_BY_KIND[kind])})')
    given = {k: v for k, v in raw.items() if k != 'type'}
    _check_keys(given, tuple(TRANSFORMS[kind_of]), path, f'{where}.transform')
    options = {}
    for option, default in TRANSFORMS[kind_of].items():
        if option not in given and default is REQUIRED:
            raise SpecError(f'{path}: {where}.transform.{option} is required for a {kind_of} transform')
        options[option] = given.get(option, None if default is REQUIRED else default)
    if kind_of == 'bucketize':
        if (options['boundaries'] is None) == (options['num_buckets'] is None):
            raise SpecError(f'{path}: {where}.transform: bucketize takes exactly one of "boundaries" '
                            '(explicit edges) or "num_buckets" (quantiles of the training data)')
        edges = options['boundaries']
        if edges is not None and (not edges or list(edges) != sorted(set(edges))):
            raise SpecError(f'{path}: {where}.transform.boundaries must be strictly increasing numbers')
    for option in ('buckets', 'num_buckets', 'num_oov_buckets'):
        if options.get(option) is not None:
            _positive_int(options[option], path, f'{where}.transform.{option}')
    return Transform(type=kind_of, options=options)


def _complete_vocabularies(columns, vocabularies, path) -> Dict[str, Vocabulary]:
    """Adds a vocabulary for each column that uses its own; a column may not redefine a shared one."""
    complete = dict(vocabularies)
    for column in columns:
        name = column.vocabulary
        if name is None:
            continue
        own = {k: column.transform[k] for k in VOCABULARY_OPTIONS if column.transform.options.get(k) is not None}
        if column.transform.options.get('vocabulary') is not None:
            if name not in vocabularies:
                raise SpecError(f'{path}: columns.{column.name}.transform.vocabulary: no vocabulary named {name!r} '
                                f'under "vocabularies" (known: {", ".join(vocabularies) or "none"})')
            own.pop('num_oov_buckets', None)  # the default, not a redefinition
            if own:
                raise SpecError(f'{path}: columns.{column.name}.transform: options {sorted(own)} belong to the '
                                f'shared vocabulary {name!r}, set them under vocabularies.{name}')
        elif name in complete:
            raise SpecError(f'{path}: columns.{column.name}: a vocabulary named {name!r} exists already; '
                            f'set transform.vocabulary: {name} to share it')
        else:
            complete[name] = Vocabulary(name=name, **own)
    return complete


def _check_references(spec: FeatureSpec) -> None:
    names = [c.name for c in spec.columns]
    for column in spec.columns:
        if column.transform is not None and column.transform.type == 'time_gap':
            reference = column.transform['reference']
            timestamps = [c for c in spec.columns if c.source == reference and c.kind == TIMESTAMP and not c.sequence]
            if not timestamps:
                raise SpecError(f'{spec.path}: columns.{column.name}.transform.reference: {reference!r} is not a '
                                'scalar timestamp column of the spec')
        if column.sequence and column.group in (None, model_inputs.BEHAVIOR) and spec.behavior is None:
            raise SpecError(f'{spec.path}: columns.{column.name} is a sequence but the spec has no "behavior" '
                            'section giving max_length and length_feature')
    lengths = [length for _, length in spec.sequence_groups().values()]
    for length in lengths:
        if length in names or lengths.count(length) > 1:
            raise SpecError(f'{spec.path}: the length feature {length!r} (behavior.length_feature or '
                            'auxiliary.<group>.length_feature) clashes with a column or another group\'s')
    sessions = spec.behavior.sessions if spec.behavior else None
    if sessions is not None:
        if not any(c.source == sessions.time and c.kind == TIMESTAMP and c.sequence for c in spec.columns):
            raise SpecError(f'{spec.path}: behavior.sessions.time: {sessions.time!r} is not the source of a timestamp '
                            'sequence column of the spec')
        derived = [sessions.length_feature, spec.behavior.length_feature] + [
            sessions.feature(c.name) for c in spec.columns if c.sequence and c.group == model_inputs.BEHAVIOR]
        clashes = sorted(set(derived) & set(names)) or sorted({n for n in derived if derived.count(n) > 1})
        if clashes:
            raise SpecError(f'{spec.path}: behavior.sessions: the session features {clashes} clash with other names')
    for key in ('gauc_group', 'request_group'):
        value = getattr(spec, key)
        if value is not None and value not in spec.raw_columns:
            raise SpecError(f'{spec.path}: {key}: {value!r} is not a column of the spec')
    if not spec.labels:
        raise SpecError(f'{spec.path}: columns: the spec has no column of kind "label"')
    for column in spec.of_kind(PRIVILEGED):
        if column.sequence or column.group is not None:
            raise SpecError(f'{spec.path}: columns.{column.name}: a privileged feature is one value per example and '
                            'belongs to no group')
    for kind in (POSITION, WEIGHT):
        if len(spec.of_kind(kind)) > 1:
            raise SpecError(f'{spec.path}: columns: at most one column of kind {kind!r}')
    evaluation_labels = spec.labels + tuple(c.name for c in spec.of_kind(GROUND_TRUTH))
    for role, label in spec.label_roles.items():
        if label not in evaluation_labels:
            raise SpecError(f'{spec.path}: label_roles.{role}: {label!r} is not a column of kind "label" or '
                            f'"ground_truth" (those are: {", ".join(evaluation_labels)})')


def _check_keys(mapping: Any, allowed: Tuple[str, ...], path: str, where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise SpecError(f'{path}: {where} must be a mapping')
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise SpecError(f'{path}: {where}: unknown option {unknown[0]!r}; allowed: {", ".join(allowed)}')


def _rate(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(f'{path}: negative_sampling_rate must be a number in (0, 1], got {value!r}')
    return float(value)


def _positive_int(value: Any, path: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f'{path}: {where} must be a positive integer, got {value!r}')
    return value


def check_columns(spec: FeatureSpec, available: Mapping[str, str], source: str) -> None:
    """Rejects data that lacks a column the spec reads, or holds it with the wrong type.

    Args:
      available: raw column name → observed dtype ('int64', 'float32' or 'string'; None when unknown).
      source: the file or directory the columns were read from, for the message.
    """
    for column in spec.columns:
        if column.source not in available:
            raise SpecError(f'{spec.path}: columns.{column.name}: column {column.source!r} is missing from the data '
                            f'in {source} (it has: {", ".join(sorted(available))})')
    for column in spec.columns:
        seen = available[column.source]
        if seen is None or seen == column.dtype:
            continue
        if column.dtype == 'float32' and seen == 'int64':
            continue  # integers are valid numbers
        if column.sequence and seen == 'string':
            continue  # CSV: a space-separated list in one string
        raise SpecError(f'{spec.path}: columns.{column.name}: column {column.source!r} in {source} holds '
                        f'{seen} values but the spec declares {column.dtype}')
