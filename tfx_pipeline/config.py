"""Pipeline configuration: a YAML file plus ``--set section.key=value`` overrides, validated before any work.

.. code-block:: yaml

    name: demo                                   # outputs under <runs_dir>/<name>/
    runs_dir: runs
    feature_spec: feature_spec/specs/synthetic.yaml
    data:
      path: data/default                         # <path>/<format>/{train,eval,test}/
      format: tfrecord                           # or csv
      synthetic: {preset: default, seed: 7}      # generate the data there if it is missing (optional)
      item_feed: ''                              # a retrieval index's item table (default: the generator's)
    training: {model: din, hparams: {}, batch_size: 512, epochs: 8, learning_rate: 0.003,
               learning_rate_decay: 0.5, early_stopping_patience: 2, early_stopping_metric: '', seed: 42,
               shuffle_buffer: 200000}
    # training.model may be a list of names: one Trainer, Evaluator and Pusher each, on one Transform.
    # early_stopping_metric: a training metric ('' = the primary head's AUC: auc, or ctr_auc for a multi-head model).
    evaluation: {auc_floor: 0.6, head_floors: {cvr: 0.6}, recall_floor: 0.0, canary: true}   # head_floors: AUC
    # floors of other heads; recall_floor: a retrieval model's Recall@50; canary: serve before pushing
    runner: {kind: local, beam_args: [], enable_cache: false,
             image: '', pipeline_root: '', image_workdir: /recsys}    # the last three: kind kubeflow

Every unknown key, wrong type or impossible value raises :class:`ConfigError` naming it.
"""

import dataclasses
import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import yaml

SPLITS = ('train', 'eval', 'test')
RUNNERS = ('local', 'beam', 'kubeflow')
KUBEFLOW = 'kubeflow'
FORMATS = ('tfrecord', 'csv')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_URI = re.compile(r'^[a-z][a-z0-9+.-]*://', re.IGNORECASE)


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key at fault."""


class _Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
    """YAML's safe loader, with ``1e-9`` and ``3E5`` read as numbers (YAML 1.1 needs a dot: ``1.0e-9``), so
    ``--set training.learning_rate=1e-4`` or an ``l2: 1e-3`` hparam is a float, not a string."""


_Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'''^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+][0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$''', re.X),
    list('-+0123456789.'))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    # A registered model name, or a list of names: each model then gets its own Trainer, Evaluator and Pusher on
    # the one Transform output, with the same hparams and schedule (every model must accept every hparam).
    model: Union[str, Tuple[str, ...]] = dataclasses.field(default='din', metadata={'names': True})
    hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int = 512
    epochs: int = 8
    learning_rate: float = 0.003
    # Epoch e (from 0) trains at learning_rate · learning_rate_decay^e; 1.0 keeps it constant. The defaults were
    # chosen by measurement on the default synthetic data set (README, "Results").
    learning_rate_decay: float = 0.5
    early_stopping_patience: int = 2
    # The eval metric early stopping watches, without the ``val_`` prefix (a higher value is better); '' watches the
    # model's primary head's AUC.
    early_stopping_metric: str = ''
    seed: int = 42
    shuffle_buffer: int = 200_000

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'TrainingConfig':
        return _build(cls, values, 'training')

    @property
    def models(self) -> Tuple[str, ...]:
        """The model names, one or several."""
        return (self.model,) if isinstance(self.model, str) else tuple(self.model)

    def for_model(self, name: str) -> 'TrainingConfig':
        """This schedule and these hparams for the one model ``name``."""
        return dataclasses.replace(self, model=name)

    def to_dict(self) -> Dict[str, Any]:
        model = self.model if isinstance(self.model, str) else list(self.model)
        return {**dataclasses.asdict(self), 'model': model, 'hparams': dict(self.hparams)}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    path: str = 'data/default'
    format: str = 'tfrecord'
    synthetic: Optional[Mapping[str, Any]] = None
    # Raw files (data.format) of the item table, one row of the feature spec's candidate columns per item: a retrieval
    # model's index adds the items outside Transform's vocabulary (new items). '' with synthetic data: the table the
    # generator writes (<path>/<format>/items/), when there is one.
    item_feed: str = ''

    def split_dir(self, split: str) -> str:
        return os.path.join(self.path, self.format, split)

    def split_pattern(self, split: str) -> str:
        return os.path.join(self.split_dir(split), '*')

    def item_feed_pattern(self) -> Tuple[Optional[str], bool]:
        """``(the item feed's file pattern or None, whether it must exist)``: ``item_feed`` (required), or the
        synthetic generator's table (used when present)."""
        if self.item_feed:
            return self.item_feed, True
        if self.synthetic is not None:
            from tfx_pipeline.data.synthetic import ITEMS  # pylint: disable=import-outside-toplevel
            return self.split_pattern(ITEMS), False
        return None, False


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    auc_floor: float = 0.6   # of the primary head
    # AUC floors of a multi-head model's other heads, by head name (e.g. {cvr: 0.6}); blessing needs them all.
    head_floors: Mapping[str, float] = dataclasses.field(default_factory=dict)
    # Retrieval models: the floor of the test Recall@50 (full ranking over the item vocabulary) for blessing.
    recall_floor: float = 0.0
    # Before the Pusher, the project's server serves the candidate in a new process (tfx_pipeline/canary.py).
    canary: bool = True


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    kind: str = 'local'
    beam_args: Sequence[str] = ()
    # TFX caching reuses a component's outputs when its inputs and settings are unchanged; it cannot see edits to
    # this project's code (modules are named by path), so it is off unless asked for.
    enable_cache: bool = False
    # kind kubeflow (tfx_pipeline/kubeflow.py): the container image of every task, the pipeline root (a bucket URI;
    # the pushed models go to <pipeline_root>/serving/<model>/), and where the image holds this repository.
    image: str = ''
    pipeline_root: str = ''
    image_workdir: str = '/recsys'


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    name: str = 'demo'
    runs_dir: str = 'runs'
    feature_spec: str = 'feature_spec/specs/synthetic.yaml'
    data: DataConfig = DataConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    runner: RunnerConfig = RunnerConfig()

    @property
    def run_dir(self) -> str:
        return os.path.abspath(os.path.join(self.runs_dir, self.name))

    @property
    def kubeflow(self) -> bool:
        return self.runner.kind == KUBEFLOW

    @property
    def pipeline_root(self) -> str:
        return self.runner.pipeline_root if self.kubeflow else os.path.join(self.run_dir, 'pipeline')

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.run_dir, 'metadata.sqlite')

    def node_id(self, component: str, model: str) -> str:
        """The pipeline node id of a model's Trainer, Evaluator, Pusher or baseline resolver: the plain component
        name when the run trains one model, ``<component>.<model>`` when it trains several."""
        return component if isinstance(self.training.model, str) else f'{component}.{model}'

    def serving_dir(self, model: str) -> str:
        """``runs/<name>/serving/<model>`` (Kubeflow: ``<pipeline_root>/serving/<model>``): Pusher writes
        ``<version>/`` below it, the TF Serving layout."""
        if self.kubeflow:
            return f'{self.runner.pipeline_root.rstrip("/")}/serving/{model}'
        return os.path.join(self.run_dir, 'serving', model)

    def component_path(self, path: str) -> str:
        """A file of this project (the feature spec) as the pipeline's components open it: its absolute path, or
        the image's path under Kubeflow (:func:`image_path`)."""
        return image_path(path, self.runner.image_workdir) if self.kubeflow else os.path.abspath(path)

    def data_path(self, path: str) -> str:
        """A data path as the components open it: absolute, or the URI as given."""
        return path if is_remote(path) else os.path.abspath(path)


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URI a container can open (``gs://``, ``s3://``, …; not ``file://``)."""
    return bool(_URI.match(path)) and not path.lower().startswith('file://')


def image_path(path: str, workdir: str) -> str:
    """``path`` (a file of this repository) as the container image sees it (the Dockerfile copies the repository
    to ``workdir``); ValueError for a file outside the repository."""
    relative = os.path.relpath(os.path.abspath(path), REPO)
    if relative.startswith(os.pardir):
        raise ValueError(f'{path} is outside the repository, so not in the image: copy it into the repository (the '
                         'Dockerfile copies the repository)')
    return f'{workdir.rstrip("/")}/{relative.replace(os.sep, "/")}'


_SECTIONS = {'data': DataConfig, 'training': TrainingConfig, 'evaluation': EvaluationConfig,
             'runner': RunnerConfig}


def load(path: Optional[str] = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Reads ``path`` (or the defaults), applies ``key.sub=value`` overrides, and checks every value."""
    raw: Dict[str, Any] = {}
    if path is not None:
        if not os.path.exists(path):
            raise ConfigError(f'config file not found: {path}')
        with open(path) as f:
            raw = yaml.load(f, Loader=_Loader) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f'{path}: a config is a mapping of sections')
    for override in overrides:
        _apply_override(raw, override)
    return from_dict(raw)


def from_dict(raw: Mapping[str, Any]) -> PipelineConfig:
    values = dict(raw)
    for section, cls in _SECTIONS.items():
        values[section] = _build(cls, values.get(section) or {}, section)
    config = _build(PipelineConfig, values, '')
    _check_values(config)
    return config


def _apply_override(raw: Dict[str, Any], override: str) -> None:
    key, sep, value = override.partition('=')
    if not sep or not key:
        raise ConfigError(f'override {override!r} is not of the form section.key=value')
    *parents, leaf = key.split('.')
    node = raw
    for parent in parents:
        node = node.setdefault(parent, {})
        if not isinstance(node, dict):
            raise ConfigError(f'override {override!r}: {parent!r} is not a section')
    node[leaf] = yaml.load(value, Loader=_Loader)


def _build(cls, values: Mapping[str, Any], where: str):
    if not isinstance(values, Mapping):
        raise ConfigError(f'config {where or "top level"} must be a mapping, got {values!r}')
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ConfigError(f'config: unknown key {_join(where, key)!r}; known keys: {", ".join(fields)}')
    kwargs = {}
    for key, value in values.items():
        default = fields[key].default
        if dataclasses.is_dataclass(type(value)):
            kwargs[key] = value
            continue
        if fields[key].metadata.get('names'):
            kwargs[key] = _names(value, _join(where, key))
        else:
            kwargs[key] = _typed(value, default, _join(where, key))
    return cls(**kwargs)


def _names(value, where):
    """A name, or a non-empty list of distinct names (a tuple)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        if len(set(value)) != len(value):
            raise ConfigError(f'config: {where} lists a name twice: {list(value)!r}')
        return tuple(value)
    raise ConfigError(f'config: {where} must be a name or a non-empty list of names, got {value!r}')


def _typed(value, default, where):
    """Checks ``value`` against the type of the field's default."""
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'config: {where} must be true or false, got {value!r}')
        return value
    if isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f'config: {where} must be an integer, got {value!r}')
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'config: {where} must be a number, got {value!r}')
        return float(value)
    if isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f'config: {where} must be a string, got {value!r}')
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f'config: {where} must be a list of strings, got {value!r}')
        return tuple(value)
    return value


def _check_values(config: PipelineConfig) -> None:
    training = config.training
    for key in ('batch_size', 'epochs', 'shuffle_buffer'):
        if getattr(training, key) <= 0:
            raise ConfigError(f'config: training.{key} must be positive, got {getattr(training, key)}')
    if training.early_stopping_patience < 0:
        raise ConfigError('config: training.early_stopping_patience must be ≥ 0')
    if not 0 < training.learning_rate < 1:
        raise ConfigError(f'config: training.learning_rate must be in (0, 1), got {training.learning_rate}')
    if not 0 < training.learning_rate_decay <= 1:
        raise ConfigError(f'config: training.learning_rate_decay must be in (0, 1], got {training.learning_rate_decay}')
    if not isinstance(training.hparams, Mapping):
        raise ConfigError(f'config: training.hparams must be a mapping, got {training.hparams!r}')
    if not 0 <= config.evaluation.auc_floor < 1:
        raise ConfigError(f'config: evaluation.auc_floor must be in [0, 1), got {config.evaluation.auc_floor}')
    floors = config.evaluation.head_floors
    if not isinstance(floors, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1
            for k, v in floors.items()):
        raise ConfigError(f'config: evaluation.head_floors must map head names to AUC floors in [0, 1), got {floors!r}')
    if config.runner.kind not in RUNNERS:
        raise ConfigError(f'config: runner.kind {config.runner.kind!r} is not one of {", ".join(RUNNERS)}')
    if config.data.format not in FORMATS:
        raise ConfigError(f'config: data.format {config.data.format!r} is not one of {", ".join(FORMATS)}')
    if not config.name or os.sep in config.name:
        raise ConfigError(f'config: name {config.name!r} must be a plain directory name')
    if config.kubeflow:
        _check_kubeflow(config)


def _check_kubeflow(config: PipelineConfig) -> None:
    """Every path a Kubeflow task opens must exist in its container: a bucket's URI, or a file of the image."""
    if not config.runner.image:
        raise ConfigError('config: runner.image: a Kubeflow run needs the container image its tasks run (see the '
                          'Dockerfile)')
    remote = {'runner.pipeline_root': config.runner.pipeline_root, 'data.path': config.data.path}
    if config.data.item_feed:
        remote['data.item_feed'] = config.data.item_feed
    for key, path in remote.items():
        if not is_remote(path):
            raise ConfigError(f'config: {key} {path!r} is a local path; a Kubeflow task runs in a container that '
                              'cannot open it: give a bucket URI (gs://…, s3://…)')
    if config.data.synthetic is not None:
        raise ConfigError('config: data.synthetic generates the data on this machine, but a Kubeflow run reads '
                          'data.path from the bucket: generate it (python -m tfx_pipeline.data --out DIR), copy it '
                          'there, and set data.synthetic: null')
    try:
        image_path(config.feature_spec, config.runner.image_workdir)
    except ValueError as e:
        raise ConfigError(f'config: feature_spec: {e}') from e


def _join(where: str, key: str) -> str:
    return f'{where}.{key}' if where else key

