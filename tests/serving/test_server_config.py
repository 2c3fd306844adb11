"""A model config file with two models, a specific-versions policy and version labels, served over gRPC."""

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2

from serving import model_manager

State = get_model_status_pb2.ModelVersionStatus


@pytest.fixture
def server(tiny, tmp_path, start_server):
    ranker = tiny.base(str(tmp_path), versions=(1, 2, 3), name='ranker')
    scorer = tiny.base(str(tmp_path), versions=(1, 2), name='scorer')
    config = tmp_path / 'models.config'
    config.write_text(f'''
model_config_list {{
  config {{
    name: "ranker"
    base_path: "{ranker}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 3 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 3 }}
  }}
  config {{
    name: "scorer"
    base_path: "{scorer}"
    model_platform: "tensorflow"
  }}
}}''')
    return start_server(model_manager.read_config_file(str(config)))


def _version(server, tiny, model, **spec) -> int:
    return server.predictions.Predict(tiny.predict_request(model, [1.0], **spec), timeout=10).model_spec.version.value


def _states(server, model):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    return {s.version: s.state for s in server.models.GetModelStatus(request, timeout=10).model_version_status}


def test_two_models_with_their_policies(server, tiny):
    assert server.server.manager.model_names() == ['ranker', 'scorer']
    assert _states(server, 'ranker') == {3: State.AVAILABLE, 1: State.AVAILABLE}
    assert _states(server, 'scorer') == {2: State.AVAILABLE}
    assert _version(server, tiny, 'ranker') == 3
    assert _version(server, tiny, 'ranker', version=1) == 1
    assert _version(server, tiny, 'scorer') == 2
    with pytest.raises(grpc.RpcError) as info:
        _version(server, tiny, 'ranker', version=2)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_version_labels_route_requests(server, tiny):
    assert _version(server, tiny, 'ranker', version_label='stable') == 1
    assert _version(server, tiny, 'ranker', version_label='canary') == 3
    request = tiny.predict_request('ranker', [1.0], version_label='stable')
    assert server.predictions.Predict(request, timeout=10).model_spec.version.value == 1
    with pytest.raises(grpc.RpcError) as info:
        _version(server, tiny, 'scorer', version_label='stable')
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                         'Unrecognized servable version label: stable')
