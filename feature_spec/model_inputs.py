"""What a model sees after Transform: the resolved feature spec.

The feature spec (YAML) says what each raw column is; after Transform has computed vocabularies, every model
input is described by an :class:`InputField`. Models are built from a :class:`ModelInputs` and never name a
feature, a vocabulary size or a sequence length themselves.

Tensor conventions of the transformed features a model receives (``features[name]``):

* ``categorical``: int64 ``[B]``; index 0 is reserved (missing value / padding), so real ids and OOV buckets
    start at 1 and ``vocab_size`` counts index 0 too.
* ``numeric``: float32 ``[B]``, already normalised by Transform.
* ``sequence``: int64 ``[B, max_length]``: the most recent ``max_length`` behaviours in time order (oldest
    first), left-aligned, padded with 0 at the end. The number of valid steps is the int64 ``[B]`` feature named
    by :attr:`ModelInputs.sequence_length`; step ``j`` is valid iff ``j < length``.
* training-only inputs (:attr:`ModelInputs.training_only`: the spec's ``position`` and ``privileged`` columns),
    categorical or numeric as above, are in the features in training and evaluation but never at serving.
* ``session`` (only in :attr:`ModelInputs.sessions`, when the spec divides the behaviours into sessions): int64
    ``[B, max_sessions · max_length]``, the same behaviours in DSIN's session layout (:mod:`feature_spec.sessions`);
    step t of session k is valid iff t < ``lengths[:, k]``, the int64 ``[B, max_sessions]`` feature named by
    :attr:`SessionInputs.length_feature`.
"""

import dataclasses
from typing import Dict, Optional, Tuple

CATEGORICAL = 'categorical'
NUMERIC = 'numeric'
SEQUENCE = 'sequence'
SESSION = 'session'

# Feature groups: the DIN/DMR grouping of inputs.
USER = 'user'
BEHAVIOR = 'behavior'
ITEM = 'item'
CONTEXT = 'context'
GROUPS = (USER, BEHAVIOR, ITEM, CONTEXT)
# The groups of the training-only inputs: the spec's kinds of them.
POSITION = 'position'
PRIVILEGED = 'privileged'
# The label role of the primary label, which every ranking model predicts.
CLICK_ROLE = 'click'


@dataclasses.dataclass(frozen=True)
class InputField:
    """One transformed model input.

    Attributes:
        name: the transformed feature's name (the key in the features dict).
        kind: ``categorical``, ``numeric`` or ``sequence``.
        group: ``user``, ``behavior``, ``item`` or ``context``, the name of an auxiliary group, or, for a
            training-only input, its spec kind (``position`` or ``privileged``).
        table: name of the embedding table; features sharing a vocabulary share a table (``item_id`` and
            ``hist_item_id`` both use table ``item_id``). None for numeric inputs.
        vocab_size: rows of that table, index 0 included. 0 for numeric inputs.
        embedding_dim: width of the table's embeddings. 0 for numeric inputs.
        max_length: number of steps of a sequence (of one session for a ``session`` field), None otherwise.
        query: for a behaviour sequence, the name of the target feature it is compared with in attention
            (``hist_category`` → ``category``); None for behaviour side information that has no target counterpart
            (time-gap bucket, behaviour type) and for non-sequence inputs.
        label_rates: for a training-only position, the primary label's rate in the training data per id (index 0,
            padding, and ids never seen: 0), as Transform counted it; None for every other input.
        first_id: for a training-only position, the id of the first (top) position; None otherwise.
    """
    name: str
    kind: str
    group: str
    table: Optional[str] = None
    vocab_size: int = 0
    embedding_dim: int = 0
    max_length: Optional[int] = None
    query: Optional[str] = None
    label_rates: Optional[Tuple[float, ...]] = None
    first_id: Optional[int] = None

    @classmethod
    def from_dict(cls, config: dict) -> 'InputField':
        rates = config.get('label_rates')
        return cls(**{**config, 'label_rates': None if rates is None else tuple(rates)})


@dataclasses.dataclass(frozen=True)
class FeatureCross:
    """A cross product of categorical inputs named in the spec (Wide&Deep's wide part): one weight per combination
    of their ids, hashed into ``hash_buckets`` weights."""
    name: str
    columns: Tuple[str, ...]
    hash_buckets: int


@dataclasses.dataclass(frozen=True)
class SessionInputs:
    """The behaviour sequences in DSIN's session layout: one ``session`` field per sequence (its table and query
    those of the sequence, ``max_length`` the steps of a session), ``max_sessions`` sessions, and the name of the
    ``[B, max_sessions]`` session-length feature."""
    fields: Tuple[InputField, ...]
    max_sessions: int
    length_feature: str

    def to_dict(self) -> dict:
        return {'fields': [dataclasses.asdict(f) for f in self.fields], 'max_sessions': self.max_sessions,
                'length_feature': self.length_feature}

    @classmethod
    def from_dict(cls, config: dict) -> 'SessionInputs':
        return cls(tuple(InputField.from_dict(f) for f in config['fields']), config['max_sessions'],
                   config['length_feature'])


@dataclasses.dataclass(frozen=True)
class AuxiliaryInputs:
    """The inputs of one auxiliary group of the spec (e.g. DSTN's unclicked ads): its fields (``group`` is the
    group's name; sequences of ``max_length`` steps) and the name of the ``[B]`` length feature of its sequences."""
    name: str
    fields: Tuple[InputField, ...]
    length_feature: str

    def to_dict(self) -> dict:
        return {'name': self.name, 'fields': [dataclasses.asdict(f) for f in self.fields],
                'length_feature': self.length_feature}

    @classmethod
    def from_dict(cls, config: dict) -> 'AuxiliaryInputs':
        return cls(config['name'], tuple(InputField.from_dict(f) for f in config['fields']), config['length_feature'])


@dataclasses.dataclass(frozen=True)
class ModelInputs:
    """All transformed model inputs, the spec's feature crosses, the names of the length feature and the labels,
    the session layout of the behaviours when the spec divides them (``sessions``), the spec's auxiliary groups
    (``auxiliary``) and its training-only inputs (``training_only``: positions, privileged features); only the models
    that read sessions, an auxiliary group or a training-only input look at them. ``label_roles`` says which label
    plays which role (``click``, ``conversion``, …) for the models with several heads."""
    fields: Tuple[InputField, ...]
    sequence_length: Optional[str] = None
    labels: Tuple[str, ...] = ('click',)
    crosses: Tuple[FeatureCross, ...] = ()
    sessions: Optional[SessionInputs] = None
    auxiliary: Tuple[AuxiliaryInputs, ...] = ()
    training_only: Tuple[InputField, ...] = ()
    label_roles: Tuple[Tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        """The primary label (the first)."""
        return self.labels[0]

    def __getitem__(self, name: str) -> InputField:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f'no model input named {name!r}; inputs are {[f.name for f in self.fields]}')

    def label_for(self, role: str) -> str:
        """The label that plays ``role`` (``click``: the primary label unless the spec names another); KeyError naming
        the spec's ``label_roles`` section when no label does."""
        roles = {CLICK_ROLE: self.label, **dict(self.label_roles)}
        if role not in roles:
            raise KeyError(f'the feature spec gives no label the role {role!r}: add "label_roles: {{{role}: <label '
                           f'column>}}" (roles: {roles})')
        return roles[role]

    def training_inputs(self, group: str) -> Tuple[InputField, ...]:
        """The training-only inputs of ``group`` (:data:`POSITION` or :data:`PRIVILEGED`)."""
        return tuple(f for f in self.training_only if f.group == group)

    def auxiliary_group(self, name: str) -> AuxiliaryInputs:
        """The auxiliary group ``name``; KeyError naming the groups there are."""
        for group in self.auxiliary:
            if group.name == name:
                return group
        raise KeyError(f'the feature spec has no auxiliary group {name!r}; it has '
                       f'{[g.name for g in self.auxiliary] or "none"}')

    def of_kind(self, kind: str) -> Tuple[InputField, ...]:
        return tuple(f for f in self.fields if f.kind == kind)

    def in_group(self, group: str) -> Tuple[InputField, ...]:
        return tuple(f for f in self.fields if f.group == group)

    @property
    def tables(self) -> Dict[str, Tuple[int, int]]:
        """Embedding tables: name → (vocab_size, embedding_dim); each shared table listed once."""
        tables = {}
        for field in self.fields:
            if field.table is None:
                continue
            shape = (field.vocab_size, field.embedding_dim)
            if tables.setdefault(field.table, shape) != shape:
                raise ValueError(f'table {field.table!r} is given two shapes: {tables[field.table]} and {shape}')
        return tables

    def with_embedding_dim(self, embedding_dim: int) -> 'ModelInputs':
        """The same inputs with every embedding table of one width (FM-family models need a single k)."""
        return dataclasses.replace(self, fields=tuple(
            f if f.table is None else dataclasses.replace(f, embedding_dim=embedding_dim) for f in self.fields))

    def to_dict(self) -> dict:
        return {'fields': [dataclasses.asdict(f) for f in self.fields], 'sequence_length': self.sequence_length,
                'labels': list(self.labels),
                'crosses': [{**dataclasses.asdict(c), 'columns': list(c.columns)} for c in self.crosses],
                'sessions': self.sessions.to_dict() if self.sessions else None,
                'auxiliary': [group.to_dict() for group in self.auxiliary],
                'training_only': [dataclasses.asdict(f) for f in self.training_only],
                'label_roles': dict(self.label_roles)}

    @classmethod
    def from_dict(cls, config: dict) -> 'ModelInputs':
        crosses = tuple(FeatureCross(c['name'], tuple(c['columns']), c['hash_buckets'])
                        for c in config.get('crosses', ()))
        sessions = SessionInputs.from_dict(config['sessions']) if config.get('sessions') else None
        return cls(fields=tuple(InputField.from_dict(f) for f in config['fields']),
                   sequence_length=config.get('sequence_length'), labels=tuple(config.get('labels', ('click',))),
                   crosses=crosses, sessions=sessions,
                   auxiliary=tuple(AuxiliaryInputs.from_dict(g) for g in config.get('auxiliary', ())),
                   training_only=tuple(InputField.from_dict(f) for f in config.get('training_only', ())),
                   label_roles=tuple(sorted((config.get('label_roles') or {}).items())))
