"""The run's report: ``runs/<name>/report.html``, one static page a person opens in a browser (no server, no notebook).

Read back from the run's ML Metadata store and its components' outputs, for every model of the run: its summary
(:mod:`tfx_pipeline.summary`: blessed, canary, pushed), the Evaluator's metrics per head and slice (overall, each
position, each condition label's values: :func:`tfx_pipeline.evaluation.slice_metrics`), a reliability diagram of
the primary head (TFMA's calibration plot), the primary head's AUC by position, the comparison with the last blessed
model (the Evaluator's baseline) and the validation's verdict with any failing threshold; for the run, the data's
anomalies (ExampleValidator) and the Trainers' TensorBoard log directories. A retrieval model shows its full-ranking
metrics (:mod:`tfx_pipeline.retrieval_evaluation`) and its comparison, and no ranking plot.

Choice: each section is built on its own (:func:`tfx_pipeline.report_html.section`): a section that cannot be read
says so in the page and logs its traceback, and the rest of the report is still written. The evaluation sections
are in :mod:`tfx_pipeline.report_evaluation`, the markup in :mod:`tfx_pipeline.report_html`, the figures in
:mod:`tfx_pipeline.report_figures`.

Choice: TFMA's notebook widgets need a notebook's JavaScript runtime; the figures are drawn with matplotlib from the
numbers TFMA wrote, and embedded in the page.
"""

import datetime
import os
import pathlib
import tempfile
from typing import Dict, Optional

from feature_spec import spec as spec_lib
from rec_models import registry
from tfx_pipeline import board
from tfx_pipeline import evaluation
from tfx_pipeline import report_evaluation as sections
from tfx_pipeline import report_html as h
from tfx_pipeline import summary
from tfx_pipeline.config import PipelineConfig

REPORT_FILE = 'report.html'


def write_report(config: PipelineConfig, now: Optional[datetime.datetime] = None, stopped: Optional[str] = None) -> str:
    """Writes ``<run_dir>/report.html`` (atomically: a reader never sees half a page) and returns its path.

    ``stopped``: why the run stopped before its models were trained (the data's anomalies): the page then shows the
    run's data sections only, not the models' outputs of an earlier run still in the metadata store."""
    text = render(config, now, stopped)
    os.makedirs(config.run_dir, exist_ok=True)
    path = os.path.join(config.run_dir, REPORT_FILE)
    descriptor, temporary = tempfile.mkstemp(prefix='.report-', suffix='.html', dir=config.run_dir)
    try:
        with os.fdopen(descriptor, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def render(config: PipelineConfig, now: Optional[datetime.datetime] = None, stopped: Optional[str] = None) -> str:
    """The report's HTML (see the module docstring and :func:`write_report`)."""
    run = Run(config)
    body = [_header(run, now or datetime.datetime.now().astimezone(), stopped)]
    if stopped is None:
        body += [_model_section(run, model) for model in config.training.models]
    body.append(h.section('Data anomalies', lambda: _anomalies(run), level=2, anchor='anomalies'))
    body.append(h.section('TensorBoard', lambda: _tensorboard(run), level=2, anchor='tensorboard'))
    return h.page(f'Run {config.name}: report', ''.join(body))


class Run:
    """What the sections read, each read once: the metadata store, the feature spec, each model's summary, heads,
    evaluation and its slices (the candidate's, or the baseline's)."""

    def __init__(self, config: PipelineConfig):
        self.config = config
        self._cache = {}

    def _once(self, key, read):
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    @property
    def store(self):
        def read():
            if not os.path.isfile(self.config.metadata_path):
                raise FileNotFoundError(f'{self.config.metadata_path}: no metadata store (did the pipeline run?)')
            return summary.open_store(self.config.metadata_path)
        return self._once('store', read)

    @property
    def spec(self) -> spec_lib.FeatureSpec:
        return self._once('spec', lambda: spec_lib.load(self.config.feature_spec))

    def artifact(self, type_name: str, node_id: str):
        return summary.latest_artifact(self.store, type_name, node_id)

    def summary(self, model: str) -> dict:
        return self._once(('summary', model), lambda: summary.summarize_model(self.config, model, self.store))

    def heads(self, model: str):
        return registry.heads(model, dict(self.config.training.hparams))

    def evaluation_uri(self, model: str) -> str:
        artifact = self.artifact('ModelEvaluation', self.config.node_id('Evaluator', model))
        if artifact is None:
            raise LookupError(f'no evaluation of {model} in {self.config.metadata_path} (did its Evaluator run?)')
        return artifact.uri

    def slices(self, model: str, baseline: bool = False) -> Dict[str, Dict[str, float]]:
        return self._once(('slices', model, baseline), lambda: evaluation.slice_metrics(
            self.evaluation_uri(model), self.heads(model), baseline=baseline))

    def baseline(self, model: str) -> Optional[str]:
        return self._once(('baseline', model), lambda: evaluation.baseline_model_name(self.evaluation_uri(model)))


def _header(run: Run, now: datetime.datetime, stopped: Optional[str]) -> str:
    config = run.config
    models = config.training.models
    nav = ' '.join(h.link(f'#model-{m}', m) for m in (() if stopped else models))
    nav += ' ' + h.link('#anomalies', 'data anomalies') + ' ' + h.link('#tensorboard', 'TensorBoard')
    lines = [f'<h1>Run {h.esc(config.name)}</h1>',
             f'<p class="meta">report written {h.esc(now.isoformat(timespec="seconds"))}; run directory '
             f'<code>{h.esc(config.run_dir)}</code></p>',
             f'<p class="meta">data <code>{h.esc(config.data.path)}</code> ({h.esc(config.data.format)}), feature spec '
             f'<code>{h.esc(config.feature_spec)}</code>; models {h.esc(", ".join(models))}</p>',
             f'<nav>{nav}</nav>']
    if stopped:
        return '\n'.join(lines) + (f'<p class="error">The run stopped before training its models: {h.esc(stopped)} '
                                   '(see the data anomalies below).</p>')
    return '\n'.join(lines) + h.section('Models', lambda: _models_table(run), level=2)


def _models_table(run: Run) -> str:
    rows = []
    for model in run.config.training.models:
        try:
            values = run.summary(model)
        except Exception as e:  # pylint: disable=broad-except  # its own section shows the traceback's message
            rows.append([model, registry.kind(model), f'could not read: {e}', None, None, None, None])
            continue
        metric = 'test_auc' if 'test_auc' in values else next((k for k in values if k.startswith('recall_at')), '')
        rows.append([model, registry.kind(model), metric, values.get(metric),
                     h.state(values.get('blessed'), 'blessed', 'not blessed'),
                     h.state(values.get('canary'), 'served', 'refused'),
                     values.get('pushed_model') or h.state(False, '', 'not pushed')])
    finished = _last_execution(run)
    return h.table(['model', 'kind', 'metric', 'value', 'blessing', 'canary', 'pushed to'], rows) + (
        f'<p class="meta">last component finished {h.esc(finished)}</p>' if finished else '')


def _last_execution(run: Run) -> Optional[str]:
    times = [e.last_update_time_since_epoch for e in run.store.get_executions() if e.last_update_time_since_epoch]
    if not times:
        return None
    return datetime.datetime.fromtimestamp(max(times) / 1000).astimezone().isoformat(timespec='seconds')


def _model_section(run: Run, model: str) -> str:
    retrieval = registry.kind(model) == registry.RETRIEVAL
    parts = [h.section('Summary', lambda: _summary(run, model))]
    if retrieval:
        parts.append(h.section('Metrics by slice and comparison with the last blessed model',
                               lambda: sections.retrieval(run, model)))
    else:
        parts += [h.section('Metrics by head and slice', lambda: sections.slice_tables(run, model)),
                  h.section('Reliability diagram', lambda: sections.reliability(run, model)),
                  h.section('AUC by position', lambda: sections.auc_by_position(run, model)),
                  h.section('Comparison with the last blessed model', lambda: sections.comparison(run, model))]
    kind = registry.RETRIEVAL if retrieval else registry.RANKING
    return (f'<section id="model-{h.esc(model)}">\n<h2>{h.esc(model)} <small class="note">({kind} model)</small></h2>\n'
            + ''.join(parts) + '</section>\n')


def _summary(run: Run, model: str) -> str:
    """The summary line's values (a retrieval model's state only: its metrics have their own section)."""
    values = {k: h.state(v, 'yes', 'no') if isinstance(v, bool) else v for k, v in run.summary(model).items()}
    if registry.kind(model) == registry.RETRIEVAL:
        return h.key_values((k, values.get(k)) for k in ('blessed', 'canary', 'pushed_model'))
    return h.key_values((k, v) for k, v in values.items() if k not in ('model', 'heads', 'run_dir'))


def _anomalies(run: Run) -> str:
    from tfx_pipeline.anomalies_gate import anomaly_report  # pylint: disable=g-import-not-at-top
    artifact = run.artifact('ExampleAnomalies', 'ExampleValidator')
    if artifact is None:
        raise LookupError(f'no ExampleAnomalies in {run.config.metadata_path} (did ExampleValidator run?)')
    split_names = (artifact.properties.get('split_names') or artifact.custom_properties.get('split_names'))
    found = anomaly_report(artifact.uri, split_names.string_value)
    checked = f'ExampleValidator checked the splits against the schema generated from the feature spec ' \
              f'({artifact.uri}).'
    if not found:
        return f'<p><span class="ok">no anomalies</span></p><p class="note">{h.esc(checked)}</p>'
    rows = [line.split(': ', 1) + [''] * (line.count(': ') < 1) for line in found.splitlines()]
    return h.table(['split/feature', 'anomaly'], rows) + f'<p class="note">{h.esc(checked)}</p>'


def _tensorboard(run: Run) -> str:
    directories = board.log_dirs(run.config)
    if not directories:
        return '<p class="note">No Trainer log directory recorded.</p>'
    rows = [[name, h.link(pathlib.Path(d).as_uri(), d)] for name, d in directories.items()]
    command = board.tensorboard_command(directories)
    return (h.table(['name', 'log directory'], rows, css='log-dirs')
            + f'<p>To browse them: <code>python -m tfx_pipeline tensorboard {h.esc(run.config.run_dir)}</code>, or '
              f'<code>{h.esc(command)}</code>.</p>')
