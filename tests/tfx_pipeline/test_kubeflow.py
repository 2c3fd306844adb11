"""Kubeflow Pipelines V2 (:mod:`tfx_pipeline.kubeflow`).

* ``runner.kind: kubeflow`` compiles the demo pipeline into ``runs/<name>/kubeflow/pipeline.json``; parsed back with
  kfp's pipeline-spec protos, it holds every component as a task, with the dependencies of the local pipeline, every
  task in ``runner.image``, the pipeline root given, and the paths the tasks read as the image and the bucket see
  them. Compiling again replaces the file whole.
* Local paths (pipeline root, data, item feed), no image, or data to generate are refused when the config is read,
  naming the key; so is a feature spec outside the repository (not in the image).
"""

import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tfx_pipeline import config as config_lib

from pipeline_cli import run_cli

IMAGE = 'registry.example/recsys-tfx:1'
KUBEFLOW = ('--set', 'runner.kind=kubeflow', '--set', f'runner.image={IMAGE}',
            '--set', 'runner.pipeline_root=gs://bucket/pipelines', '--set', 'data.path=gs://bucket/data/default',
            '--set', 'data.synthetic=null')


def _parse(path):
    with open(path) as f:
        job = json_format.Parse(f.read(), pipeline_spec_pb2.PipelineJob())
    spec = json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec), pipeline_spec_pb2.PipelineSpec())
    deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                       pipeline_spec_pb2.PipelineDeploymentConfig())
    return job, spec, deployment


def _parameter(spec, task, name):
    return spec.root.dag.tasks[task].inputs.parameters[name].runtime_value.constant_value.string_value


def test_the_demo_compiles_to_a_pipeline_job_with_its_tasks_and_dependencies(tmp_path):
    args = ('run', '--config', 'tfx_pipeline/configs/demo.yaml', *KUBEFLOW, '--set', f'runs_dir={tmp_path}')
    result = run_cli(*args, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    path = json.loads(result.stdout.strip().splitlines()[-1])['kubeflow_pipeline']
    assert path == str(tmp_path / 'demo' / 'kubeflow' / 'pipeline.json')
    job, spec, deployment = _parse(path)

    assert job.runtime_config.gcs_output_directory == 'gs://bucket/pipelines'
    tasks = spec.root.dag.tasks
    depends = {name: set(task.dependent_tasks) for name, task in tasks.items()}
    resolvers = {name for name in tasks if name.startswith('latest_blessed_model_resolver')}
    assert resolvers and set(tasks) - resolvers == {
        'ImportExampleGen', 'StatisticsGen', 'SchemaGen', 'ExampleValidator', 'AnomaliesGate', 'Transform',
        'Trainer', 'Evaluator', 'Canary', 'Pusher'}
    assert depends['StatisticsGen'] == {'ImportExampleGen'}
    assert depends['ExampleValidator'] == {'StatisticsGen', 'SchemaGen'}
    assert depends['AnomaliesGate'] == {'ExampleValidator'}
    assert depends['Transform'] == {'ImportExampleGen', 'SchemaGen', 'AnomaliesGate'}
    assert depends['Trainer'] == {'Transform'}
    assert {'Trainer', 'ImportExampleGen'} <= depends['Evaluator'] and depends['Evaluator'] & resolvers
    assert depends['Canary'] == {'Trainer', 'Evaluator'}
    assert depends['Pusher'] == {'Trainer', 'Evaluator', 'Canary'}

    images = {executor.container.image for executor in deployment.executors.values() if executor.HasField('container')}
    assert images == {IMAGE}
    assert _parameter(spec, 'SchemaGen', 'feature_spec') == '/recsys/feature_spec/specs/synthetic.yaml'
    assert _parameter(spec, 'ImportExampleGen', 'input_base') == 'gs://bucket/data/default/tfrecord'
    trainer = json.loads(_parameter(spec, 'Trainer', 'custom_config'))
    assert trainer['feature_spec'] == '/recsys/feature_spec/specs/synthetic.yaml'
    assert trainer['sample_examples'] == 'gs://bucket/data/default/tfrecord/test/*'
    assert trainer['training']['model'] == 'din'
    assert 'gs://bucket/pipelines/serving/din' in _parameter(spec, 'Pusher', 'push_destination')
    assert _parameter(spec, 'Canary', 'examples_pattern') == 'gs://bucket/data/default/tfrecord/test/*'

    again = run_cli(*args, '--set', f'runner.image={IMAGE}-2', timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    _, _, deployment = _parse(path)
    assert {e.container.image for e in deployment.executors.values() if e.HasField('container')} == {f'{IMAGE}-2'}


@pytest.mark.parametrize('override, named', [
    ('runner.pipeline_root=/tmp/pipelines', 'runner.pipeline_root'),
    ('runner.pipeline_root=file:///tmp/pipelines', 'runner.pipeline_root'),
    ('data.path=data/default', 'data.path'),
    ('data.item_feed=data/items/*', 'data.item_feed'),
    ('runner.image=', 'runner.image'),
    ('data.synthetic={preset: tiny}', 'data.synthetic'),
])
def test_local_paths_and_data_to_generate_are_refused(override, named):
    with pytest.raises(config_lib.ConfigError, match=named.replace('.', r'\.')):
        config_lib.load('tfx_pipeline/configs/demo.yaml', [o for o in KUBEFLOW if o != '--set'] + [override])


def test_a_feature_spec_outside_the_repository_is_refused(tmp_path):
    spec = tmp_path / 'spec.yaml'
    with pytest.raises(config_lib.ConfigError, match=f'feature_spec: {spec} is outside the repository'):
        config_lib.load('tfx_pipeline/configs/demo.yaml', [o for o in KUBEFLOW if o != '--set'] + [
            f'feature_spec={spec}'])
