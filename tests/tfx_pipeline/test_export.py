"""The SavedModel contract, on every registered model exported as the Trainer exports it (``exports`` in
``conftest.py``: random weights, so that every input moves the outputs).

* One fresh process that never imports this project loads every export and serves the model's in-process outputs
  (1e-5) under ``serving_default``: ``probabilities`` and every head by name.
* ``rank(context, candidates)`` equals ``serving_default`` on the joined examples (1e-5) for every output, for
  contexts and candidates taken from different logged rows, and the context changes the scores.
* The signatures need no training-only input (position, privileged features), and such a column in a request
  changes no served score.
* ``classification`` and ``regression`` carry TF Serving's method names and serve the primary head.
* The warmup file holds one request per signature, each of which the model answers.

The contract checks call the functions the SavedModel was written from; the fresh process checks that what was
written serves the same.
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
from tfx_pipeline import export

from fresh_process import score_in_fresh_process
from zoo_run import MODELS

pytestmark = pytest.mark.pipeline


def _served_names(model):
    return {signatures.PROBABILITIES} | {h.name for h in registry.heads(model) if h.name}


def test_every_export_serves_its_models_outputs_in_a_fresh_process(exports, logged, tmp_path):
    fresh = score_in_fresh_process({e.directory: logged for e in exports.values()}, str(tmp_path), outputs=True)
    for model, exported in exports.items():
        served = fresh[exported.directory]
        assert set(served) == set(exported.in_process) == _served_names(model), model
        for name, values in exported.in_process.items():
            np.testing.assert_allclose(served[name], values, atol=1e-5, rtol=0, err_msg=f'{model} {name}')
        assert np.std(served[signatures.PROBABILITIES]) > 0.01, model


@pytest.mark.parametrize('model', MODELS)
def test_every_head_is_served_and_rank_equals_serving_default_on_the_joined_examples(model, exports, logged,
                                                                                     synthetic_spec):
    serving, spec = exports[model].serving, synthetic_spec
    candidates = [split_for_rank(e, spec)[1].SerializeToString() for e in logged[20:60]]
    ranked = []
    for row in (0, 45, 101):  # different requests (a page of 10 shares one context)
        context = split_for_rank(logged[row], spec)[0].SerializeToString()
        joined = [join_for_rank(context, c).SerializeToString() for c in candidates]
        expected = serving.serve(tf.constant(joined))
        scores = serving.rank(tf.constant(context), tf.constant(candidates))
        assert set(scores) == set(expected) == _served_names(model)
        for name in expected:
            np.testing.assert_allclose(scores[name].numpy(), expected[name].numpy(), atol=1e-5, rtol=0, err_msg=name)
        ranked.append(scores[signatures.PROBABILITIES].numpy())
    assert np.abs(ranked[0] - ranked[1]).max() > 1e-3  # the context is used, not a placeholder
    none = serving.rank(tf.constant(context), tf.constant([], tf.string))
    assert none[signatures.PROBABILITIES].shape == (0,)


@pytest.mark.parametrize('model', MODELS)
def test_training_only_columns_are_not_inputs_and_change_no_score(model, exports, logged, synthetic_spec):
    serving = exports[model].serving
    training_only = [c.source for c in synthetic_spec.columns if c.training_only]
    assert training_only and not set(training_only) & set(synthetic_spec.serving_columns)
    stripped, changed = [], []
    for serialized in logged[:40]:
        example = tf.train.Example.FromString(serialized)
        for name in training_only:
            del example.features.feature[name]
        stripped.append(example.SerializeToString())
        for name in training_only:   # a value no training row has
            example.features.feature[name].CopyFrom(
                tf.train.Feature(int64_list=tf.train.Int64List(value=[77])) if name == 'position' else
                tf.train.Feature(float_list=tf.train.FloatList(value=[1e6])))
        changed.append(example.SerializeToString())
    reference = serving.serve(tf.constant(logged[:40]))
    for examples in (stripped, changed):
        outputs = serving.serve(tf.constant(examples))
        for name in reference:
            np.testing.assert_allclose(outputs[name].numpy(), reference[name].numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize('model', MODELS)
def test_classify_and_regress_signatures(model, exports, logged):
    exported = exports[model]
    defs = signatures.signature_defs(exported.directory)
    assert defs[signatures.CLASSIFY].method_name == signatures.CLASSIFY_METHOD
    assert defs[signatures.REGRESS].method_name == signatures.REGRESS_METHOD
    assert defs[signatures.PREDICT].method_name == signatures.PREDICT_METHOD
    assert set(defs[signatures.PREDICT].outputs) == _served_names(model)
    primary = exported.in_process[signatures.PROBABILITIES]
    classified = exported.serving.classify(tf.constant(logged))
    np.testing.assert_allclose(classified[signatures.CLASSIFY_SCORES].numpy()[:, 1], primary, atol=1e-5)
    np.testing.assert_allclose(classified[signatures.CLASSIFY_SCORES].numpy().sum(axis=1), 1.0, atol=1e-6)
    assert classified[signatures.CLASSIFY_CLASSES].numpy()[0].tolist() == [b'0', b'1']
    regressed = exported.serving.regress(tf.constant(logged))
    np.testing.assert_allclose(regressed[signatures.REGRESS_OUTPUTS].numpy(), primary, atol=1e-5)


@pytest.mark.parametrize('model', MODELS)
def test_warmup_requests_cover_every_signature_and_run(model, exports):
    exported = exports[model]
    functions = exported.serving.signatures()
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
            for r in tf.data.TFRecordDataset(f'{exported.directory}/{signatures.WARMUP_FILE}')]
    kinds = [log.WhichOneof('log_type') for log in logs]
    assert kinds.count('predict_log') == 3 and 'classify_log' in kinds and 'regress_log' in kinds
    for log in logs:
        if log.HasField('predict_log'):
            request = log.predict_log.request
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            outputs = functions[request.model_spec.signature_name](**inputs)[signatures.PROBABILITIES]
            rows = tf.make_ndarray(request.inputs.get(signatures.CANDIDATES, request.inputs.get(signatures.EXAMPLES)))
            assert outputs.shape == (len(rows),) and np.all(np.isfinite(outputs.numpy()))
    assert {log.predict_log.request.model_spec.signature_name for log in logs if log.HasField('predict_log')} == \
        {signatures.PREDICT, signatures.RANK}


def test_lists_joined_for_a_csv_trained_model_read_back_as_the_typed_lists(logged, synthetic_spec):
    spec = synthetic_spec
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
