"""The one-line summary of each model of a run, read back from its metadata store and the data set's metadata."""

import json
import os
from typing import Any, Dict, List, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from feature_spec import spec as spec_lib
from rec_models import registry
from rec_models.metrics import fraction_of_ceiling
from tfx_pipeline import evaluation
from tfx_pipeline import retrieval_evaluation
from tfx_pipeline import tfma_metrics
from tfx_pipeline.config import PipelineConfig

DATA_METADATA = 'metadata.json'


def summarize(config: PipelineConfig) -> List[Dict[str, Any]]:
    """One summary per model of the run (:func:`summarize_model`), in the config's order."""
    store = open_store(config.metadata_path)
    return [summarize_model(config, model, store) for model in config.training.models]


HEAD_METRICS = ('auc', 'gauc', 'logloss', 'calibration', 'relevance_auc', 'conversion_if_clicked_auc')


def summarize_model(config: PipelineConfig, model: str, store=None) -> Dict[str, Any]:
    """model, test metrics of its last evaluation (the primary head's; a multi-head model's other heads under
    ``heads``; the relevance AUC when the data has click-if-examined labels), the data's Bayes AUC, the fraction of it
    reached, the blessing, the canary's verdict, the push."""
    store = store or open_store(config.metadata_path)
    evaluation_artifact = latest_artifact(store, 'ModelEvaluation', config.node_id('Evaluator', model))
    if registry.kind(model) == registry.RETRIEVAL:
        return _retrieval_summary(config, model, store, evaluation_artifact)
    heads = registry.heads(model, dict(config.training.hparams))
    spec = spec_lib.load(config.feature_spec)
    metrics = evaluation.overall_metrics(evaluation_artifact.uri, heads, spec) if evaluation_artifact else {}
    bayes_auc = data_metadata(config.data.path).get('bayes_auc')
    test_auc = metrics.get(evaluation.AUC_NAME)
    pushed = latest_artifact(store, 'PushedModel', config.node_id('Pusher', model))
    blessing = latest_artifact(store, 'ModelBlessing', config.node_id('Evaluator', model))
    summary = {
        'model': model,
        'test_auc': test_auc,
        'gauc': metrics.get(evaluation.GAUC_NAME),
        'logloss': metrics.get(evaluation.LOGLOSS_NAME),
        'calibration': metrics.get('calibration'),
        'csauc': metrics.get(tfma_metrics.CSAUC_NAME),
        'coec': metrics.get(tfma_metrics.COEC_NAME),
        'example_count': metrics.get('example_count'),
        'bayes_auc': bayes_auc,
        'fraction_of_ceiling': (fraction_of_ceiling(test_auc, bayes_auc)
                                if test_auc is not None and bayes_auc is not None else None),
        'blessed': bool(blessing and _property(blessing, 'blessed')),
        'canary': _canary(config, model, store),
        'pushed_model': _property(pushed, 'pushed_destination') if pushed and _property(pushed, 'pushed') else None,
        'run_dir': config.run_dir,
    }
    relevance_auc = metrics.get(f'{heads[0].counterfactual}_{evaluation.AUC_NAME}')
    if relevance_auc is not None:   # the primary head's; a named head's are under ``heads``
        summary[f'{heads[0].counterfactual}_auc'] = relevance_auc
    if len(heads) > 1:
        summary['heads'] = {head.name: _rounded({
            name[len(head.name) + 1:]: value for name, value in metrics.items()
            if name.startswith(f'{head.name}_') and name[len(head.name) + 1:].split('_given_')[0] in HEAD_METRICS})
            for head in heads}
    return _rounded(summary)


def _retrieval_summary(config: PipelineConfig, model: str, store, evaluation_artifact) -> Dict[str, Any]:
    """model, the full-ranking test metrics of its last evaluation (:mod:`tfx_pipeline.retrieval_evaluation`), the
    push."""
    metrics = retrieval_evaluation.read_metrics(evaluation_artifact.uri) if evaluation_artifact else {}
    pushed = latest_artifact(store, 'PushedModel', config.node_id('Pusher', model))
    blessing = latest_artifact(store, 'ModelBlessing', config.node_id('Evaluator', model))
    return _rounded({
        'model': model, **metrics,
        'blessed': bool(blessing and _property(blessing, 'blessed')),
        'canary': _canary(config, model, store),
        'pushed_model': _property(pushed, 'pushed_destination') if pushed and _property(pushed, 'pushed') else None,
        'run_dir': config.run_dir,
    })


def _canary(config: PipelineConfig, model: str, store) -> Optional[bool]:
    """Whether the canary served the model (None: no canary ran)."""
    infra = latest_artifact(store, 'InfraBlessing', config.node_id('Canary', model))
    return None if infra is None else bool(_property(infra, 'blessed'))


def _rounded(values: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}


def data_metadata(data_path: str) -> Dict[str, Any]:
    path = os.path.join(data_path, DATA_METADATA)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def open_store(path: str) -> metadata_store.MetadataStore:
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def latest_artifact(store, type_name: str, component: str) -> Optional[metadata_store_pb2.Artifact]:
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
