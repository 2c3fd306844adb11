"""The canary before the Pusher (:mod:`tfx_pipeline.canary`).

* A model the Trainer exported is served by the project's server in a new process (warmup replayed) and answers
  ``serving_default`` and ``rank``.
* An export whose variables are corrupted, one whose signature fails on a request, and one whose scores are NaN are
  each refused, with the reason (and the server's last log lines).
"""

import glob
import os
import shutil

import pytest
import tensorflow as tf

from tfx_pipeline import canary

pytestmark = pytest.mark.pipeline


def test_a_trained_export_is_served_and_answers_the_canary(exports, logged, synthetic_spec):
    timings = canary.check(exports['din'].directory, logged[:canary.CANARY_EXAMPLES], synthetic_spec)
    assert set(timings) == {'serving_default', 'rank'} and all(ms > 0 for ms in timings.values())


def test_corrupted_variables_are_refused(exports, logged, synthetic_spec, tmp_path):
    broken = tmp_path / 'din'
    shutil.copytree(exports['din'].directory, broken)
    for path in glob.glob(str(broken / 'variables' / 'variables.data-*')):
        with open(path, 'r+b') as f:
            f.write(b'\xff' * 4096)
    with pytest.raises(canary.CanaryError, match='did not load|exited|failed'):
        canary.check(str(broken), logged[:4], synthetic_spec)


class _Broken(tf.Module):
    def __init__(self, failure):
        super().__init__()
        self.failure = failure

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name='examples')])
    def serve(self, examples):
        count = tf.shape(examples)[0]
        if self.failure == 'nan':
            return {'probabilities': tf.fill([count], float('nan'))}
        tf.debugging.assert_equal(count, -1, message='this model cannot score')
        return {'probabilities': tf.zeros([count])}


@pytest.mark.parametrize('failure, named', [('nan', 'not finite'), ('raises', 'this model cannot score')])
def test_a_model_that_fails_its_requests_is_refused(failure, named, logged, tmp_path):
    module = _Broken(failure)
    tf.saved_model.save(module, str(tmp_path / 'broken'), signatures={'serving_default': module.serve})
    with pytest.raises(canary.CanaryError, match=named):
        canary.check(str(tmp_path / 'broken'), logged[:4])


def test_the_pusher_does_not_push_a_model_the_canary_refused(tiny_data, tmp_path):
    """A pipeline of the real components: the Trainer's outputs imported (a model that fails its requests, blessed by
    the Evaluator), the Canary, TFX's Pusher."""
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel
    from ml_metadata.metadata_store import metadata_store  # pylint: disable=import-outside-toplevel
    from pipeline_cli import REPO  # pylint: disable=import-outside-toplevel
    module = _Broken('raises')
    tf.saved_model.save(module, str(tmp_path / 'model' / 'Format-Serving'),
                        signatures={'serving_default': module.serve})
    (tmp_path / 'blessing').mkdir()
    model = tfx.dsl.Importer(source_uri=str(tmp_path / 'model'), artifact_type=tfx.types.standard_artifacts.Model
                             ).with_id('model')
    blessing = tfx.dsl.Importer(source_uri=str(tmp_path / 'blessing'),
                                artifact_type=tfx.types.standard_artifacts.ModelBlessing,
                                custom_properties={'blessed': 1}).with_id('blessing')
    check = canary.Canary(model=model.outputs['result'], model_blessing=blessing.outputs['result'],
                          examples_pattern=str(tiny_data / 'tfrecord' / 'test' / '*'),
                          feature_spec=os.path.join(REPO, 'feature_spec', 'specs', 'synthetic.yaml'),
                          data_format='tfrecord')
    pusher = tfx.components.Pusher(
        model=model.outputs['result'], model_blessing=blessing.outputs['result'],
        infra_blessing=check.outputs['infra_blessing'],
        push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
            base_directory=str(tmp_path / 'serving'))))
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / 'metadata.sqlite'))
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name='canary', pipeline_root=str(tmp_path / 'root'), components=[model, blessing, check, pusher],
        metadata_connection_config=metadata))
    [report] = glob.glob(str(tmp_path / 'root' / 'Canary' / 'infra_blessing' / '*' / canary.REPORT_FILE))
    refused = canary.read_report(os.path.dirname(report))
    assert refused['blessed'] is False and 'this model cannot score' in refused['reason']
    assert not os.path.exists(tmp_path / 'serving')
    [pushed] = metadata_store.MetadataStore(metadata).get_artifacts_by_type('PushedModel')
    assert pushed.custom_properties['pushed'].int_value == 0
