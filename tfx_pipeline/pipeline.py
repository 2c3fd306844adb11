"""The TFX pipeline: ExampleGen → StatisticsGen, SchemaGen, ExampleValidator → Transform → Trainer → Evaluator →
Pusher, built from a :class:`~tfx_pipeline.config.PipelineConfig` and the feature spec.

* ExampleGen: ImportExampleGen for TFRecord data, CsvExampleGen for CSV; the data directory's ``train``,
  ``eval`` and ``test`` sub-directories are the splits (the synthetic generator splits by time).
* SchemaGen: the schema is generated from the feature spec (:mod:`~tfx_pipeline.schema_gen`), not inferred from the
  data, so ExampleValidator checks the data against what the spec declares; an AnomaliesGate stops the run with a
  report naming each wrong feature before Transform starts.
* Transform analyses ``train`` and transforms every split with the spec's ``preprocessing_fn``.
* Trainer trains on ``train``, stops early on ``eval``; the Evaluator scores ``test`` and blesses against the
  model's own last blessed version; the Pusher copies a blessed model to ``runs/<name>/serving/<model>/<version>/``.
  With several models (``training.model`` a list) each gets its own Trainer, Evaluator and Pusher
  (``Trainer.<model>``, …) on the one Transform output.
* Canary (``evaluation.canary``, on by default): between the Evaluator and the Pusher, the project's server loads
  the candidate in a new process, replays its warmup requests and answers logged test examples; the Pusher pushes
  only a model both blessed (:mod:`~tfx_pipeline.canary`).
* A retrieval model (:mod:`rec_models.retrieval`) gets the :mod:`~tfx_pipeline.retrieval_evaluation` Evaluator
  (full-ranking Recall@K, NDCG@K, MRR of the pushed SavedModel; blessing on Recall@50, same no-regression rule).
* ``runner.kind: kubeflow``: the same components, with the paths the tasks open as their container sees them
  (:meth:`~tfx_pipeline.config.PipelineConfig.component_path`, ``data_path``) and the cluster's ML Metadata
  (:mod:`~tfx_pipeline.kubeflow`).
"""

import os

from tfx import v1 as tfx
from tfx.proto import example_gen_pb2

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from rec_models import registry
from tfx_pipeline import evaluation
from tfx_pipeline import export
from tfx_pipeline import retrieval_evaluation
from tfx_pipeline.anomalies_gate import AnomaliesGate
from tfx_pipeline.canary import Canary
from tfx_pipeline.config import SPLITS, PipelineConfig
from tfx_pipeline.schema_gen import SpecSchemaGen

DEFAULT_BEAM_ARGS = {
    'local': ['--direct_running_mode=in_memory'],
    'beam': ['--direct_running_mode=multi_processing', '--direct_num_workers=0'],
    'kubeflow': ['--direct_running_mode=multi_processing', '--direct_num_workers=0'],
}


def _model_branch(config: PipelineConfig, spec: spec_lib.FeatureSpec, model: str, example_gen, transform,
                  expected_ctr) -> list:
    """Trainer → Evaluator (against the model's own last blessed version) → Pusher for one model; ``expected_ctr``:
    the training data's CTR per position, for COEC."""
    data = config.data
    heads = registry.heads(model, dict(config.training.hparams))
    custom_config = {'feature_spec': config.component_path(spec.path), 'data_format': data.format,
                     'training': config.training.for_model(model).to_dict(),
                     'sample_examples': config.data_path(data.split_pattern('test')),
                     'train_examples': config.data_path(data.split_pattern('train'))}
    feed, required = data.item_feed_pattern()
    if feed is not None:
        custom_config.update(item_feed=config.data_path(feed), item_feed_required=required)
    trainer = tfx.components.Trainer(
        run_fn='tfx_pipeline.trainer.run_fn',
        examples=transform.outputs['transformed_examples'], transform_graph=transform.outputs['transform_graph'],
        train_args=tfx.proto.TrainArgs(splits=['train']), eval_args=tfx.proto.EvalArgs(splits=['eval']),
        custom_config=custom_config).with_id(config.node_id('Trainer', model))
    evaluator_id = config.node_id('Evaluator', model)
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model, producer_component_id=trainer.id),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id=evaluator_id),
    ).with_id(config.node_id('latest_blessed_model_resolver', model))
    if registry.kind(model) == registry.RETRIEVAL:
        evaluator = retrieval_evaluation.RetrievalEvaluator(
            model=trainer.outputs['model'], baseline_model=baseline.outputs['model'],
            feature_spec=config.component_path(spec.path), data_format=data.format,
            test_pattern=config.data_path(data.split_pattern('test')),
            train_pattern=config.data_path(data.split_pattern('train')),
            recall_floor=float(config.evaluation.recall_floor)).with_id(evaluator_id)
        evaluator.add_upstream_node(example_gen)
    else:
        evaluator = _evaluator(config, spec, heads, example_gen, trainer, baseline, expected_ctr, evaluator_id)
    checks = []
    if config.evaluation.canary:
        checks.append(Canary(model=trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
                             examples_pattern=config.data_path(data.split_pattern('test')),
                             feature_spec=config.component_path(spec.path), data_format=data.format
                             ).with_id(config.node_id('Canary', model)))
    pusher = tfx.components.Pusher(
        model=trainer.outputs['model'], model_blessing=evaluator.outputs['blessing'],
        infra_blessing=checks[0].outputs['infra_blessing'] if checks else None,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving_dir(model)))
    ).with_id(config.node_id('Pusher', model))
    return [trainer, baseline, evaluator, *checks, pusher]


def _evaluator(config: PipelineConfig, spec: spec_lib.FeatureSpec, heads, example_gen, trainer, baseline,
               expected_ctr, evaluator_id: str):
    """The TFMA Evaluator of a ranking model."""
    data = config.data
    return tfx.components.Evaluator(
        examples=example_gen.outputs['examples'], model=trainer.outputs['model'],
        baseline_model=baseline.outputs['model'], example_splits=['test'],
        eval_config=evaluation.eval_config(spec, config.evaluation.auc_floor, export.evaluation_signature(data.format),
                                           heads, {name: floor for name, floor in config.evaluation.head_floors.items()
                                                   if name in {h.name for h in heads[1:]}},
                                           expected_ctr)).with_id(evaluator_id)


def create_pipeline(config: PipelineConfig, spec: spec_lib.FeatureSpec) -> tfx.dsl.Pipeline:
    """All components, wired; nothing runs until a runner runs the returned pipeline."""
    data = config.data
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=split, pattern=os.path.join(split, '*')) for split in SPLITS])
    input_base = config.data_path(os.path.join(data.path, data.format))
    if data.format == schema_lib.CSV:
        example_gen = tfx.components.CsvExampleGen(input_base=input_base, input_config=input_config)
    else:
        example_gen = tfx.components.ImportExampleGen(input_base=input_base, input_config=input_config)

    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
    spec_path = config.component_path(spec.path)
    schema_gen = SpecSchemaGen(feature_spec=spec_path, data_format=data.format).with_id('SchemaGen')
    example_validator = tfx.components.ExampleValidator(statistics=statistics_gen.outputs['statistics'],
                                                        schema=schema_gen.outputs['schema'])
    gate = AnomaliesGate(anomalies=example_validator.outputs['anomalies'])

    transform = tfx.components.Transform(
        examples=example_gen.outputs['examples'], schema=schema_gen.outputs['schema'],
        preprocessing_fn='tfx_pipeline.preprocessing.preprocessing_fn',
        custom_config={'feature_spec': spec_path},
        splits_config=tfx.proto.SplitsConfig(analyze=['train'], transform=list(SPLITS)),
        disable_statistics=True)
    transform.add_upstream_node(gate)

    components = [example_gen, statistics_gen, schema_gen, example_validator, gate, transform]
    expected_ctr = {} if config.kubeflow else evaluation.position_ctr(spec, data.split_pattern('train'), data.format)
    for model in config.training.models:
        components += _model_branch(config, spec, model, example_gen, transform, expected_ctr)
    return tfx.dsl.Pipeline(
        pipeline_name=config.name, pipeline_root=config.pipeline_root, components=components,
        enable_cache=config.runner.enable_cache,
        metadata_connection_config=None if config.kubeflow else
        tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path),
        beam_pipeline_args=DEFAULT_BEAM_ARGS[config.runner.kind] + list(config.runner.beam_args))
