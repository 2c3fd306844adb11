"""gRPC round trips against an in-process server: every API, answers equal to calling the SavedModel directly, and
TF Serving's status codes and model specs."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, input_pb2,
                                     model_management_pb2, predict_pb2, regression_pb2)

from serving import model_manager, signatures
from serving.server import ModelServer, ServerOptions

XS = [-2.0, -0.5, 0.0, 0.5, 3.0]


@pytest.fixture
def server(tiny, tmp_path, start_server):
    return start_server(model_manager.config_from_flags('tiny', tiny.base(str(tmp_path), versions=(1, 2))))


def _error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value


def test_predict_equals_calling_the_saved_model_and_is_served_by_the_latest_version(server, tiny):
    response = server.predictions.Predict(tiny.predict_request('tiny', XS), timeout=10)
    direct = tf.saved_model.load(tiny.export(2)).signatures[signatures.PREDICT](
        examples=tf.constant(tiny.serialized(XS)))[signatures.PROBABILITIES].numpy()
    served = tf.make_ndarray(response.outputs[signatures.PROBABILITIES])
    np.testing.assert_array_equal(served, direct)
    np.testing.assert_allclose(served, tiny.probability(2, XS), rtol=1e-6)
    assert list(response.outputs[signatures.PROBABILITIES].float_val) == served.tolist()  # typed field, as TF Serving
    assert (response.model_spec.name, response.model_spec.version.value, response.model_spec.signature_name) == (
        'tiny', 2, signatures.PREDICT)


def test_versions_are_latest_only_by_default(server, tiny):
    error = _error(server.predictions.Predict, tiny.predict_request('tiny', XS, version=1))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert 'Servable not found for request: Specific(tiny, 1)' in error.details()


def test_rank_takes_a_scalar_context(server, tiny):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = 'tiny', signatures.RANK
    request.inputs[signatures.CONTEXT].CopyFrom(
        tf.make_tensor_proto(tiny.example(u=0.25).SerializeToString(), dtype=tf.string))
    request.inputs[signatures.CANDIDATES].CopyFrom(tf.make_tensor_proto(tiny.serialized(XS), dtype=tf.string))
    response = server.predictions.Predict(request, timeout=10)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[signatures.PROBABILITIES]),
                               tiny.probability(2, XS, u=0.25), rtol=1e-6)
    assert response.model_spec.signature_name == signatures.RANK


def test_output_filter_selects_outputs_and_unknown_aliases_are_invalid(server, tiny):
    request = tiny.predict_request('tiny', XS, signature_name=signatures.CLASSIFY)
    request.inputs[signatures.CLASSIFY_INPUTS].CopyFrom(request.inputs.pop(signatures.EXAMPLES))
    request.output_filter.append(signatures.CLASSIFY_SCORES)
    response = server.predictions.Predict(request, timeout=10)
    assert list(response.outputs) == [signatures.CLASSIFY_SCORES]
    request.output_filter.append('nope')
    error = _error(server.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'output tensor alias not found in signature: nope' in error.details()


def test_an_empty_batch_predicts_nothing_as_in_tf_serving(server, tiny):
    response = server.predictions.Predict(tiny.predict_request('tiny', []), timeout=10)
    assert tf.make_ndarray(response.outputs[signatures.PROBABILITIES]).shape == (0,)


def test_classify_with_context_merges_context_and_examples(server, tiny):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = 'tiny', signatures.CLASSIFY
    with_context = request.input.example_list_with_context
    with_context.context.CopyFrom(tiny.example(x=1.0))
    with_context.examples.add().CopyFrom(tiny.example(x=-1.0))  # overrides the context's x
    with_context.examples.add()  # takes the context's x
    response = server.predictions.Classify(request, timeout=10)
    scores = [[item.score for item in c.classes] for c in response.result.classifications]
    labels = [[item.label for item in c.classes] for c in response.result.classifications]
    expected = tiny.probability(2, [-1.0, 1.0])
    np.testing.assert_allclose(scores, np.stack([1 - expected, expected], axis=1), rtol=1e-6)
    assert labels == [['0', '1'], ['0', '1']]
    assert response.model_spec.signature_name == signatures.CLASSIFY and response.model_spec.version.value == 2


def test_regress_returns_one_value_per_example(server, tiny):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = 'tiny', signatures.REGRESS
    request.input.example_list.examples.extend(tiny.example(x=x) for x in XS)
    response = server.predictions.Regress(request, timeout=10)
    np.testing.assert_allclose([r.value for r in response.result.regressions], tiny.probability(2, XS), rtol=1e-6)


def test_classify_on_a_predict_signature_names_the_expected_method(server, tiny):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = 'tiny'
    request.input.example_list.examples.add().CopyFrom(tiny.example(x=1.0))
    error = _error(server.predictions.Classify, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ('Expected classification signature method_name to be tensorflow/serving/classify. '
                               'Was: tensorflow/serving/predict')


def test_classify_and_regress_refuse_empty_input(server):
    request = regression_pb2.RegressionRequest(input=input_pb2.Input())
    request.model_spec.name, request.model_spec.signature_name = 'tiny', signatures.REGRESS
    error = _error(server.predictions.Regress, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, 'Input is empty.')


def test_metadata_is_the_signature_def_map_of_the_saved_model(server, tiny):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=['signature_def'])
    request.model_spec.name = 'tiny'
    response = server.predictions.GetModelMetadata(request, timeout=10)
    signature_def_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata['signature_def'].Unpack(signature_def_map)
    assert dict(signature_def_map.signature_def) == signatures.signature_defs(tiny.export(2))
    assert signature_def_map.signature_def[signatures.REGRESS].method_name == signatures.REGRESS_METHOD
    assert (response.model_spec.name, response.model_spec.version.value) == ('tiny', 2)
    request.metadata_field[:] = ['nope']
    assert _error(server.predictions.GetModelMetadata, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_model_status_lists_versions_newest_first(server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = 'tiny'
    response = server.models.GetModelStatus(request, timeout=10)
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    request.model_spec.name = 'nope'
    error = _error(server.models.GetModelStatus, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, 'Could not find any versions of model nope')


def test_unknown_model_is_not_found_and_missing_model_spec_is_invalid(server, tiny):
    error = _error(server.predictions.Predict, tiny.predict_request('nope', XS))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND,
                                               'Servable not found for request: Latest(nope)')
    error = _error(server.predictions.Predict, predict_pb2.PredictRequest())
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, 'Missing ModelSpec')


def test_unknown_signature_is_invalid_argument_for_predict(server, tiny):
    error = _error(server.predictions.Predict, tiny.predict_request('tiny', XS, signature_name='nope'))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               'Serving signature key "nope" not found.')


def test_wrong_dtype_names_the_input(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'tiny'
    request.inputs[signatures.EXAMPLES].CopyFrom(tf.make_tensor_proto([1.0, 2.0], dtype=tf.float32))
    error = _error(server.predictions.Predict, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "input 'examples': expected dtype string, got float32")


def test_undecodable_examples_are_invalid_with_tensorflow_s_message(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'tiny'
    request.inputs[signatures.EXAMPLES].CopyFrom(tf.make_tensor_proto([b'\xff\x00garbage'], dtype=tf.string))
    error = _error(server.predictions.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'Could not parse example input' in error.details()


def test_multi_inference_is_unimplemented(server):
    from tensorflow_serving.apis import inference_pb2  # pylint: disable=import-outside-toplevel
    error = _error(server.predictions.MultiInference, inference_pb2.MultiInferenceRequest())
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED


def test_reload_config_adds_and_removes_models(server, tiny, tmp_path):
    config = model_manager.config_from_flags('other', tiny.base(str(tmp_path), versions=(3,), name='other'))
    response = server.models.HandleReloadConfigRequest(
        model_management_pb2.ReloadConfigRequest(config=config), timeout=30)
    assert response.status.error_code == 0
    served = server.predictions.Predict(tiny.predict_request('other', [1.0]), timeout=10)
    assert served.model_spec.version.value == 3
    error = _error(server.predictions.Predict, tiny.predict_request('tiny', [1.0]))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = 'tiny'
    assert [s.state for s in server.models.GetModelStatus(status, timeout=10).model_version_status] == [
        get_model_status_pb2.ModelVersionStatus.END]
    config.model_config_list.config[0].base_path = str(tmp_path / 'missing')
    error = _error(server.models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest(config=config))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and 'missing is not a directory' in error.details()


def test_a_port_in_use_fails_to_start(server, tiny, tmp_path):
    config = model_manager.config_from_flags('tiny', tiny.base(str(tmp_path), name='again'))
    with pytest.raises(OSError, match='--port: cannot bind gRPC'):
        ModelServer(config, ServerOptions(port=server.server.grpc_port, file_system_poll_wait_seconds=0)).start()
