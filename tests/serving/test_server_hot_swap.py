"""Hot swap under load: a new version pushed file by file replaces the old one without a failed request."""

import os
import shutil
import threading
import time

import grpc
from tensorflow_serving.apis import get_model_status_pb2

from serving import model_manager, signatures

State = get_model_status_pb2.ModelVersionStatus


def _states(server, name='tiny'):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    return {s.version: s.state for s in server.models.GetModelStatus(request, timeout=10).model_version_status}


def _wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.05)


def test_a_version_pushed_file_by_file_swaps_in_without_a_failed_request(tiny, tmp_path, start_server,
                                                                         slow_copy):
    base = tiny.base(str(tmp_path), versions=(1,))
    server = start_server(model_manager.config_from_flags('tiny', base), file_system_poll_wait_seconds=0.1)
    stop = threading.Event()
    versions = {0: [], 1: []}
    failures = []

    def client(index):
        request = tiny.predict_request('tiny', [1.0])
        while not stop.is_set():
            try:
                versions[index].append(server.predictions.Predict(request, timeout=10).model_spec.version.value)
            except grpc.RpcError as e:  # every failure is recorded, none expected
                failures.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in versions]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: all(versions.values()))
        slow_copy(tiny.export(2), os.path.join(base, '2'), pause=0.03)
        _wait_for(lambda: _states(server) == {2: State.AVAILABLE, 1: State.END})
        count = sum(map(len, versions.values()))
        _wait_for(lambda: sum(map(len, versions.values())) > count + 10)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]
    for served in versions.values():
        assert served[0] == 1 and served[-1] == 2
        assert served == sorted(served), 'a client went back to the old version'


def test_a_half_written_version_is_not_loaded_and_serving_goes_on(tiny, tmp_path, start_server):
    base = tiny.base(str(tmp_path), versions=(1,))
    server = start_server(model_manager.config_from_flags('tiny', base), file_system_poll_wait_seconds=0.05)
    os.makedirs(os.path.join(base, '2'))
    shutil.copy(os.path.join(tiny.export(2), signatures.SAVED_MODEL_FILE), os.path.join(base, '2'))
    time.sleep(0.5)  # ten polls
    response = server.predictions.Predict(tiny.predict_request('tiny', [1.0]), timeout=10)
    assert response.model_spec.version.value == 1
    assert _states(server) == {1: State.AVAILABLE}
