"""The one-line summary of each model of a run, read back from its metadata store and the data set's metadata."""

import json
import os
from typing import Any, Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from rec_models.metrics import fraction_of_ceiling
from tfx_pipeline import evaluation
from tfx_pipeline.config import PipelineConfig

DATA_METADATA = 'metadata.json'


def summarize(config: PipelineConfig) -> List[Dict[str, Any]]:
    """One summary per model of the run (:func:`summarize_model`), in the config's order."""
    store = _store(config.metadata_path)
    return [summarize_model(config, model, store) for model in config.training.models]


def summarize_model(config: PipelineConfig, model: str, store=None) -> Dict[str, Any]:
    """model, test metrics of its last evaluation, the data's Bayes AUC, the fraction of it reached, the push."""
    store = store or _store(config.metadata_path)
    evaluation_artifact = _latest(store, 'ModelEvaluation', config.node_id('Evaluator', model))
    metrics = evaluation.overall_metrics(evaluation_artifact.uri) if evaluation_artifact else {}
    bayes_auc = data_metadata(config.data.path).get('bayes_auc')
    test_auc = metrics.get(evaluation.AUC_NAME)
    pushed = _latest(store, 'PushedModel', config.node_id('Pusher', model))
    blessing = _latest(store, 'ModelBlessing', config.node_id('Evaluator', model))
    summary = {
        'model': model,
        'test_auc': test_auc,
        'gauc': metrics.get(evaluation.GAUC_NAME),
        'logloss': metrics.get(evaluation.LOGLOSS_NAME),
        'calibration': metrics.get('calibration'),
        'example_count': metrics.get('example_count'),
        'bayes_auc': bayes_auc,
        'fraction_of_ceiling': (fraction_of_ceiling(test_auc, bayes_auc)
                                if test_auc is not None and bayes_auc is not None else None),
        'blessed': bool(blessing and _property(blessing, 'blessed')),
        'pushed_model': _property(pushed, 'pushed_destination') if pushed and _property(pushed, 'pushed') else None,
        'run_dir': config.run_dir,
    }
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in summary.items()}


def data_metadata(data_path: str) -> Dict[str, Any]:
    path = os.path.join(data_path, DATA_METADATA)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _store(path: str) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def _latest(store, type_name: str, component: str) -> Optional[metadata_store_pb2.Artifact]:
    """The newest artifact of ``type_name`` written by the pipeline node ``component`` (its URI is
    ``<pipeline root>/<node id>/<output>/<execution>``)."""
    artifacts = [a for a in store.get_artifacts_by_type(type_name)
                 if os.path.basename(os.path.dirname(os.path.dirname(a.uri))) == component]
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def _property(artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    return getattr(value, value.WhichOneof('value'))
