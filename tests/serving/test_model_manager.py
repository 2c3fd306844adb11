"""The model manager with polls run by hand (poll wait 0): readiness of version directories, policies, failed loads,
warmup, labels, the hold of a version by a running request, and config checks."""

import os
import shutil

import grpc
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import inference, model_manager, signatures, tensors

State = get_model_status_pb2.ModelVersionStatus


def _manager(config) -> model_manager.ModelManager:
    manager = model_manager.ModelManager(config, inference.Inference(tensors.Limits()), poll_wait_seconds=0)
    manager.start()
    return manager


def _config(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def _states(manager, name='tiny'):
    response = manager.status(model_pb2.ModelSpec(name=name))
    return {s.version: s.state for s in response.model_version_status}


def _served(manager, name='tiny', **spec) -> int:
    with manager.acquire(model_pb2.ModelSpec(name=name, **spec)) as version:
        return version.version


def test_a_version_loads_once_its_listing_is_unchanged_between_two_polls(tiny, tmp_path):
    base = tiny.base(str(tmp_path), versions=(1,))
    manager = _manager(model_manager.config_from_flags('tiny', base))
    shutil.copytree(tiny.export(2), os.path.join(base, '2'))  # in place, not atomic
    manager.poll()
    assert _states(manager) == {2: State.START, 1: State.AVAILABLE}
    with open(os.path.join(base, '2', 'variables', 'variables.index'), 'ab') as f:
        f.write(b'more')  # still being written
    manager.poll()
    assert _served(manager) == 1
    with open(os.path.join(base, '2', 'variables', 'variables.index'), 'wb') as f:
        with open(os.path.join(tiny.export(2), 'variables', 'variables.index'), 'rb') as original:
            f.write(original.read())
    manager.poll()
    manager.poll()
    assert _served(manager) == 2
    assert _states(manager) == {2: State.AVAILABLE, 1: State.END}


def test_a_directory_without_variables_index_is_never_loaded(tiny, tmp_path):
    base = tiny.base(str(tmp_path), versions=(1,))
    manager = _manager(model_manager.config_from_flags('tiny', base))
    shutil.copytree(tiny.export(2), os.path.join(base, '2'), ignore=shutil.ignore_patterns('variables.index'))
    for _ in range(3):
        manager.poll()
    assert _served(manager) == 1
    assert _states(manager) == {1: State.AVAILABLE}


def test_a_failed_load_is_reported_and_retried_when_the_files_change(tiny, tmp_path):
    base = tiny.base(str(tmp_path), versions=(1,))
    manager = _manager(model_manager.config_from_flags('tiny', base))
    broken = os.path.join(base, '2')
    shutil.copytree(tiny.export(2), broken)
    with open(os.path.join(broken, signatures.SAVED_MODEL_FILE), 'wb') as f:
        f.write(b'not a SavedModel')
    manager.poll()
    manager.poll()
    status = manager.status(model_pb2.ModelSpec(name='tiny')).model_version_status
    assert [(s.version, s.state) for s in status] == [(2, State.END), (1, State.AVAILABLE)]
    assert status[0].status.error_code != 0 and status[0].status.error_message
    assert _served(manager) == 1
    shutil.copy(os.path.join(tiny.export(2), signatures.SAVED_MODEL_FILE), broken)
    manager.poll()
    manager.poll()
    assert _served(manager) == 2


@pytest.mark.parametrize('policy, on_disk, served', [
    ('', (1, 2, 3), {3}),
    ('latest { num_versions: 2 }', (1, 2, 3), {2, 3}),
    ('all {}', (1, 2, 3), {1, 2, 3}),
    ('specific { versions: 1 versions: 3 versions: 7 }', (1, 2, 3), {1, 3}),
])
def test_version_policies(policy, on_disk, served):
    policy_proto = text_format.Parse(policy, model_server_config_pb2.ModelConfig().model_version_policy.__class__())
    assert model_manager.wanted_versions(policy_proto, on_disk) == served


def test_a_specific_policy_serves_old_versions_and_labels_route_to_them(tiny, tmp_path):
    base = tiny.base(str(tmp_path), versions=(1, 2, 3))
    manager = _manager(_config(f'''model_config_list {{ config {{
        name: "tiny" base_path: "{base}" model_platform: "tensorflow"
        model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
        version_labels {{ key: "stable" value: 1 }} version_labels {{ key: "canary" value: 2 }} }} }}'''))
    assert _states(manager) == {2: State.AVAILABLE, 1: State.AVAILABLE}
    assert _served(manager) == 2
    assert _served(manager, version_label='stable') == 1
    assert _served(manager, version_label='canary') == 2
    with pytest.raises(Exception) as info:
        _served(manager, version_label='nope')
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message == 'Unrecognized servable version label: nope'


def test_a_running_request_keeps_its_version_until_it_ends(tiny, tmp_path):
    base = tiny.base(str(tmp_path), versions=(1,))
    manager = _manager(model_manager.config_from_flags('tiny', base))
    with manager.acquire(model_pb2.ModelSpec(name='tiny')) as held:
        tiny.copy_version(base, 2)
        manager.poll()
        manager.poll()
        assert _served(manager) == 2
        assert _states(manager) == {2: State.AVAILABLE, 1: State.UNLOADING}
        assert held.version == 1 and held.signatures[signatures.PREDICT] is not None
    assert _states(manager) == {2: State.AVAILABLE, 1: State.END}


def test_warmup_requests_run_before_the_version_is_available(tiny, tmp_path):
    base = str(tmp_path / 'tiny')
    os.makedirs(base)
    good = tiny.copy_version(base, 1)
    tiny.write_warmup(good, [tiny.predict_request('tiny', [0.5, 1.0])] * 3)
    bad = tiny.copy_version(base, 2)
    request = tiny.predict_request('tiny', [1.0])
    request.inputs['unknown'].CopyFrom(request.inputs[signatures.EXAMPLES])
    tiny.write_warmup(bad, [request])
    manager = _manager(model_manager.config_from_flags('tiny', base))
    status = manager.status(model_pb2.ModelSpec(name='tiny')).model_version_status
    assert [(s.version, s.state) for s in status] == [(2, State.END), (1, State.AVAILABLE)]
    assert status[0].status.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert 'warmup record 1 failed: input size does not match signature' in status[0].status.error_message
    assert _served(manager) == 1


def test_unknown_versions_and_models_are_not_found(tiny, tmp_path):
    manager = _manager(model_manager.config_from_flags('tiny', tiny.base(str(tmp_path))))
    for spec, message in ((model_pb2.ModelSpec(name='nope'), 'Servable not found for request: Latest(nope)'),
                          (model_pb2.ModelSpec(name='tiny', version={'value': 5}),
                           'Servable not found for request: Specific(tiny, 5)')):
        with pytest.raises(Exception) as info:
            with manager.acquire(spec):
                pass
        assert (info.value.code, info.value.message) == (grpc.StatusCode.NOT_FOUND, message)
    with pytest.raises(Exception) as info:
        manager.status(model_pb2.ModelSpec(name='tiny', version={'value': 5}))
    assert info.value.message == 'Could not find version 5 of model tiny'


@pytest.mark.parametrize('text, message', [
    ('model_config_list { config { nme: "x" } }', 'has no field named "nme"'),
    ('model_config_list { }', 'model_config_list has no config entry'),
    ('model_config_list { config { name: "a" base_path: "BASE" } config { name: "a" base_path: "BASE" } }',
     "config[1]: model name 'a' is listed twice"),
    ('model_config_list { config { name: "a" base_path: "BASE/missing" } }',
     'config[0]: base_path BASE/missing is not a directory'),
    ('model_config_list { config { name: "a" } }', 'config[0]: base_path is empty'),
    ('model_config_list { config { name: "a" base_path: "BASE" model_version_policy { specific { } } } }',
     'config[0]: model_version_policy.specific has no versions'),
])
def test_bad_config_files_name_the_file_and_the_field(tmp_path, text, message):
    path = tmp_path / 'models.config'
    path.write_text(text.replace('BASE', str(tmp_path)))
    with pytest.raises(model_manager.ConfigError) as info:
        model_manager.read_config_file(str(path))
    assert str(info.value).startswith(f'--model_config_file {path}: ')
    assert message.replace('BASE', str(tmp_path)) in str(info.value)


def test_a_missing_base_path_names_the_flag(tmp_path):
    with pytest.raises(model_manager.ConfigError, match='--model_base_path .*missing: not a directory'):
        model_manager.config_from_flags('tiny', str(tmp_path / 'missing'))
