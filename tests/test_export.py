"""The exported SavedModel of every registered model, loaded back: its four signatures and its warmup requests.

* ``rank(context, candidates)`` equals ``serving_default`` on the joined examples (1e-5), for contexts and
  candidates taken from different logged rows, and the context changes the scores.
* ``classification`` and ``regression`` carry TF Serving's method names and return the same probabilities.
* The warmup file holds one request per signature, each of which the loaded model answers.

The models are untrained, with weights drawn at random so that their outputs vary with every input.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from feature_spec import schema as schema_lib
from feature_spec import transform
from rec_models import registry
from serving import signatures
from serving.examples import join_for_rank, split_for_rank
from tfx_pipeline import export, trainer
from tfx_pipeline.config import TrainingConfig

TFRECORD = 'tfrecord'


def _randomise(model, seed=0):
    """N(0, 0.15²) weights, kernels at most N(0, 4/fan_in) so that deep towers do not saturate the output."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        std = 0.15
        if variable.shape.rank == 2 and 'embeddings' not in variable.name:
            std = min(std, 2.0 * float(variable.shape[0]) ** -0.5)
        variable.assign(rng.normal(0.0, std, variable.shape).astype(np.float32))


@pytest.fixture(name='logged', scope='module')
def fixture_logged(prepared_small):
    return export.read_examples(prepared_small.raw['test'], 120)


@pytest.fixture(name='exported', scope='module', params=registry.names())
def fixture_exported(request, prepared_small, logged, tmp_path_factory):
    model = trainer.build_model(prepared_small.spec, prepared_small.tft_output, TrainingConfig(model=request.param))
    export.predict_in_process(model, prepared_small.tft_output, prepared_small.spec, TFRECORD, logged[:2])  # builds
    _randomise(model)
    export_dir = str(tmp_path_factory.mktemp(request.param))
    export.export_serving_model(model, prepared_small.tft_output, prepared_small.spec, TFRECORD, export_dir,
                                warmup_examples=logged)
    in_process = export.predict_in_process(model, prepared_small.tft_output, prepared_small.spec, TFRECORD, logged)
    return export_dir, tf.saved_model.load(export_dir), in_process


def test_serving_default_equals_the_model_in_process(exported, logged):
    _, loaded, in_process = exported
    served = loaded.signatures[signatures.PREDICT](examples=tf.constant(logged))[signatures.PROBABILITIES].numpy()
    np.testing.assert_allclose(served, in_process, atol=1e-5, rtol=0)
    assert np.std(served) > 0.01


def test_rank_equals_serving_default_on_the_joined_examples(exported, logged, prepared_small):
    _, loaded, _ = exported
    spec = prepared_small.spec
    candidates = [split_for_rank(e, spec)[1].SerializeToString() for e in logged[20:60]]
    ranked = []
    for row in (0, 45, 101):  # different requests (a page of 10 shares one context)
        context = split_for_rank(logged[row], spec)[0].SerializeToString()
        joined = [join_for_rank(context, c).SerializeToString() for c in candidates]
        expected = loaded.signatures[signatures.PREDICT](examples=tf.constant(joined))[signatures.PROBABILITIES]
        scores = loaded.signatures[signatures.RANK](context=tf.constant(context), candidates=tf.constant(candidates))
        np.testing.assert_allclose(scores[signatures.PROBABILITIES].numpy(), expected.numpy(), atol=1e-5, rtol=0)
        ranked.append(scores[signatures.PROBABILITIES].numpy())
    assert np.abs(ranked[0] - ranked[1]).max() > 1e-3  # the context is used, not a placeholder
    none = loaded.signatures[signatures.RANK](context=tf.constant(context), candidates=tf.constant([], tf.string))
    assert none[signatures.PROBABILITIES].shape == (0,)


def test_lists_joined_for_a_csv_trained_model_read_back_as_the_typed_lists(logged, prepared_small):
    spec = prepared_small.spec
    names = export._joined_lists(spec, schema_lib.CSV)  # pylint: disable=protected-access
    assert set(names) == {c.source for c in spec.features if c.sequence}
    empty = tf.train.Example.FromString(logged[0])
    for name in names:
        empty.features.feature[name].CopyFrom(tf.train.Feature(int64_list=tf.train.Int64List()))
    batch = tf.constant(logged[:40] + [empty.SerializeToString()])
    raw = tf.io.parse_example(batch, schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD))
    joined = export._join_lists(raw, names)  # pylint: disable=protected-access
    for name in names:
        typed = tf.RaggedTensor.from_sparse(raw[name]).to_list()
        assert joined[name].dtype == tf.string and joined[name].dense_shape.numpy().tolist() == [41, 1]
        assert transform._sequence(joined[name], raw[name].dtype).to_list() == typed  # pylint: disable=protected-access
        assert typed[-1] == [] and any(typed[:-1]), name


def test_classify_and_regress_signatures(exported, logged):
    export_dir, loaded, in_process = exported
    defs = signatures.signature_defs(export_dir)
    assert defs[signatures.CLASSIFY].method_name == signatures.CLASSIFY_METHOD
    assert defs[signatures.REGRESS].method_name == signatures.REGRESS_METHOD
    assert defs[signatures.PREDICT].method_name == signatures.PREDICT_METHOD
    classified = loaded.signatures[signatures.CLASSIFY](inputs=tf.constant(logged))
    np.testing.assert_allclose(classified[signatures.CLASSIFY_SCORES].numpy()[:, 1], in_process, atol=1e-5)
    np.testing.assert_allclose(classified[signatures.CLASSIFY_SCORES].numpy().sum(axis=1), 1.0, atol=1e-6)
    assert classified[signatures.CLASSIFY_CLASSES].numpy()[0].tolist() == [b'0', b'1']
    regressed = loaded.signatures[signatures.REGRESS](inputs=tf.constant(logged))
    np.testing.assert_allclose(regressed[signatures.REGRESS_OUTPUTS].numpy(), in_process, atol=1e-5)


def test_warmup_requests_cover_every_signature_and_run(exported):
    export_dir, loaded, _ = exported
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(f'{export_dir}/{signatures.WARMUP_FILE}')]
    kinds = [log.WhichOneof('log_type') for log in logs]
    assert kinds.count('predict_log') == 3 and 'classify_log' in kinds and 'regress_log' in kinds
    for log in logs:
        if log.HasField('predict_log'):
            request = log.predict_log.request
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            outputs = loaded.signatures[request.model_spec.signature_name](**inputs)[signatures.PROBABILITIES]
            rows = tf.make_ndarray(request.inputs.get(signatures.CANDIDATES, request.inputs.get(signatures.EXAMPLES)))
            assert outputs.shape == (len(rows),) and np.all(np.isfinite(outputs.numpy()))
    assert {log.predict_log.request.model_spec.signature_name for log in logs if log.HasField('predict_log')} == \
        {signatures.PREDICT, signatures.RANK}
