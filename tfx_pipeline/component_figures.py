"""The one figure the console prints when a component ends (:mod:`tfx_pipeline.console`), read from its outputs.

ExampleGen: its splits and their size on disk; StatisticsGen: rows per split (kept for the Trainer's progress bar);
SchemaGen: features; ExampleValidator: anomalies found; Transform: the largest vocabularies; Evaluator: the primary
metric and the blessing; Canary: how the served candidate answered, or why it was refused; Pusher: where the model
went. The Trainer reports its own (epochs, best eval metric).
"""

import os
from typing import Callable, List, Optional

from tfx_pipeline import summary
from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.console import Console

_SHOWN_VOCABULARIES = 3


def latest_output(pipeline_root: str, node_id: str, key: str) -> Optional[str]:
    """The newest execution's directory of output ``key`` of node ``node_id`` (``<root>/<node>/<key>/<execution>``)."""
    directory = os.path.join(pipeline_root, node_id, key)
    executions = [d for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
    return os.path.join(directory, max(executions, key=int)) if executions else None


def _splits(uri: str) -> List[str]:
    return sorted(d[len('Split-'):] for d in os.listdir(uri) if d.startswith('Split-'))


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def example_gen(uri: str) -> str:
    return f'splits {", ".join(_splits(uri))} ({_size(uri) / 1e6:,.1f} MB)'


def statistics(uri: str, console: Console) -> str:
    from tensorflow_metadata.proto.v0 import statistics_pb2  # pylint: disable=g-import-not-at-top
    rows = {}
    for split in _splits(uri):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with open(os.path.join(uri, f'Split-{split}', 'FeatureStats.pb'), 'rb') as f:
            stats.ParseFromString(f.read())
        rows[split] = int(sum(d.num_examples for d in stats.datasets))
    console.rows.update(rows)
    return 'rows ' + ', '.join(f'{split} {count:,}' for split, count in rows.items())


def schema(uri: str) -> str:
    from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    with open(os.path.join(uri, 'schema.pbtxt')) as f:
        parsed = text_format.Parse(f.read(), schema_pb2.Schema())
    return f'{len(parsed.feature)} features from the feature spec'


def anomalies(uri: str) -> str:
    from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
    from tfx_pipeline.anomalies_gate import anomaly_report  # pylint: disable=g-import-not-at-top
    found = [line.split(':')[0] for line in anomaly_report(
        uri, artifact_utils.encode_split_names(_splits(uri))).splitlines() if line.strip()]
    if not found:
        return 'no anomalies'
    return f'{len(found)} anomalies: {", ".join(found[:5])}{" …" if len(found) > 5 else ""}'


def vocabularies(uri: str) -> str:
    assets = os.path.join(uri, 'transform_fn', 'assets')
    from feature_spec import resolve  # pylint: disable=g-import-not-at-top
    sizes = {name: len(resolve.vocabulary_tokens(os.path.join(assets, name)))
             for name in (sorted(os.listdir(assets)) if os.path.isdir(assets) else [])}
    if not sizes:
        return 'no vocabularies'
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:_SHOWN_VOCABULARIES]
    more = len(sizes) - len(largest)
    return 'vocabularies ' + ', '.join(f'{name} {size:,}' for name, size in largest) + \
        (f' (+{more} more)' if more > 0 else '')


def evaluation(config: PipelineConfig, model: str) -> str:
    values = summary.summarize_model(config, model)
    metric = 'test_auc' if 'test_auc' in values else next((k for k in values if k.startswith('recall_at')), None)
    shown = f'{metric} {values[metric]:.4f}, ' if metric and isinstance(values.get(metric), float) else ''
    return shown + ('blessed' if values['blessed'] else 'NOT blessed (it will not be pushed)')


def push(config: PipelineConfig, model: str) -> str:
    pushed = summary.summarize_model(config, model)['pushed_model']
    return f'pushed {pushed}' if pushed else 'not pushed (not blessed, or refused by the canary)'


def for_run(config: PipelineConfig, console: Console) -> Callable[[str], Optional[str]]:
    """``node id → figure`` for the console of a run of ``config``."""
    root = config.pipeline_root

    def figure(node_id: str) -> Optional[str]:
        kind, _, model = node_id.partition('.')
        if kind.endswith('ExampleGen'):
            return example_gen(latest_output(root, node_id, 'examples'))
        if kind == 'StatisticsGen':
            return statistics(latest_output(root, node_id, 'statistics'), console)
        if kind == 'SchemaGen':
            return schema(latest_output(root, node_id, 'schema'))
        if kind == 'ExampleValidator':
            return anomalies(latest_output(root, node_id, 'anomalies'))
        if kind == 'Transform':
            return vocabularies(latest_output(root, node_id, 'transform_graph'))
        if kind == 'Evaluator':
            return evaluation(config, model or config.training.models[0])
        if kind == 'Canary':
            from tfx_pipeline import canary  # pylint: disable=g-import-not-at-top
            return canary.describe(canary.read_report(latest_output(root, node_id, 'infra_blessing')))
        if kind == 'Pusher':
            return push(config, model or config.training.models[0])
        return None
    return figure
