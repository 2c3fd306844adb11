"""The canary before the Pusher: the candidate SavedModel is loaded by this project's model server (``python -m
serving.server``) in a separate process, which replays the export's warmup requests as it loads; then logged test
examples are sent to it over gRPC as a client would (``serving_default`` and ``rank`` for a ranking model, ``retrieve``
for a retrieval model). A model that fails to load, fails its warmup or a canary request, or answers with scores
that are not finite probabilities gets an ``InfraBlessing`` with ``blessed = 0`` and the reason, and TFX's Pusher
does not push it.

Choice: TFX's InfraValidator does this with TF Serving's binary or image, which cannot run here and would not run
this project's server; the component is this module's, with InfraValidator's output type, so the Pusher needs no
change. A model the Evaluator did not bless is not loaded (it will not be pushed anyway).
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Sequence

import numpy as np
from tfx import v1 as tfx

CANARY_EXAMPLES = 8
TIMEOUT_S = 600.0
REPORT_FILE = 'canary.json'
_BLESSED, _NOT_BLESSED = 'INFRA_BLESSED', 'INFRA_NOT_BLESSED'


class CanaryError(RuntimeError):
    """The candidate could not be served: the message says where it failed."""


def _wait_for_port(process: subprocess.Popen, deadline: float) -> int:
    """The gRPC port the server prints once its models are loaded (:func:`serving.server.listening_port`)."""
    from serving.server import listening_port  # pylint: disable=g-import-not-at-top
    found: List[int] = []

    def read():
        for line in process.stdout:
            port = listening_port(line)
            if port is not None and not found:
                found.append(port)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while not found and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if found:
        return found[0]
    if process.poll() is None:
        raise CanaryError(f'the server did not start within {TIMEOUT_S:.0f} s')
    raise CanaryError(f'the server exited with status {process.returncode} before serving')


def _check_scores(name: str, values, count: int) -> None:
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] != count:
        raise CanaryError(f'{name}: {values.shape[0]} scores for {count} examples')
    if not np.all(np.isfinite(values)):
        raise CanaryError(f'{name}: scores that are not finite ({values.ravel()[:5].tolist()} …)')


def _requests(client, examples: Sequence[bytes], spec) -> Dict[str, float]:
    """Sends the canary requests the model's signatures call for; ``{request: milliseconds}``."""
    from serving import signatures  # pylint: disable=g-import-not-at-top
    from serving.examples import split_for_rank  # pylint: disable=g-import-not-at-top
    defined = set(client.metadata().signature_defs)
    timings = {}
    start = time.perf_counter()
    if signatures.RETRIEVE in defined:
        result = client.retrieve(list(examples), k=10)
        _check_scores('retrieve', result.scores, len(examples))
        timings['retrieve'] = (time.perf_counter() - start) * 1e3
        return timings
    prediction = client.predict(list(examples))
    _check_scores('serving_default', prediction.scores, len(examples))
    if not np.all((prediction.scores >= 0) & (prediction.scores <= 1)):
        raise CanaryError(f'serving_default: probabilities outside [0, 1]: {prediction.scores[:5].tolist()} …')
    timings['serving_default'] = (time.perf_counter() - start) * 1e3
    if signatures.RANK in defined and spec is not None:
        start = time.perf_counter()
        context, _ = split_for_rank(examples[0], spec)
        ranked = client.rank(context, [split_for_rank(e, spec)[1] for e in examples])
        _check_scores('rank', ranked.scores, len(examples))
        timings['rank'] = (time.perf_counter() - start) * 1e3
    return timings


def check(serving_model_dir: str, examples: Sequence[bytes], spec=None, workdir: str = None,
          timeout_s: float = TIMEOUT_S) -> Dict[str, float]:
    """Serves ``serving_model_dir`` with the project's server in a new process and sends the canary requests;
    ``{request: milliseconds}``, or CanaryError saying what failed (with the server's last log lines)."""
    from serving.client import ServingClient, ServingError  # pylint: disable=g-import-not-at-top
    if not examples:
        raise CanaryError('no canary examples: the test split is empty')
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(dir=workdir) as base:
        os.makedirs(os.path.join(base, 'canary'))   # version 1: the export itself (the server loads a snapshot)
        os.symlink(os.path.abspath(serving_model_dir), os.path.join(base, 'canary', '1'))
        log_path = os.path.join(base, 'server.log')
        with open(log_path, 'w') as log:
            env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
            process = subprocess.Popen(
                [sys.executable, '-m', 'serving.server', '--port', '0', '--model_name', 'canary',
                 '--model_base_path', os.path.join(base, 'canary'), '--file_system_poll_wait_seconds', '0'],
                stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        try:
            port = _wait_for_port(process, deadline)
            with ServingClient(f'localhost:{port}', 'canary', timeout_s=max(deadline - time.monotonic(), 1)) as client:
                states = {s.state for s in client.status()}
                if states != {'AVAILABLE'}:
                    detail = '; '.join(f'{s.state} {s.error_message}'.strip() for s in client.status())
                    raise CanaryError(f'the model did not load: {detail}')
                return _requests(client, examples, spec)
        except (ServingError, CanaryError) as e:
            with open(log_path) as f:
                tail = f.read().strip().splitlines()[-5:]
            raise CanaryError(f'{e}' + (' | server log: ' + ' / '.join(tail) if tail else '')) from e
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _report(directory: str, blessed: bool, report: Dict) -> None:
    with open(os.path.join(directory, _BLESSED if blessed else _NOT_BLESSED), 'w'):
        pass
    with open(os.path.join(directory, REPORT_FILE), 'w') as f:
        json.dump({'blessed': blessed, **report}, f)


def read_report(directory: str) -> Dict:
    with open(os.path.join(directory, REPORT_FILE)) as f:
        return json.load(f)


@tfx.dsl.components.component
def Canary(model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],  # pylint: disable=invalid-name
           model_blessing: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ModelBlessing],
           examples_pattern: tfx.dsl.components.Parameter[str], feature_spec: tfx.dsl.components.Parameter[str],
           data_format: tfx.dsl.components.Parameter[str],
           infra_blessing: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.InfraBlessing]):
    """Blesses ``model`` for the Pusher when the project's server serves it (module docstring)."""
    from tfx.utils import path_utils  # pylint: disable=g-import-not-at-top
    from feature_spec import spec as spec_lib  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import export  # pylint: disable=g-import-not-at-top
    os.makedirs(infra_blessing.uri, exist_ok=True)
    if model_blessing.get_int_custom_property('blessed') != 1:
        infra_blessing.set_int_custom_property('blessed', 0)
        _report(infra_blessing.uri, False, {'reason': 'not blessed by the Evaluator: not loaded'})
        return
    spec = spec_lib.load(feature_spec)
    examples = export.read_examples(examples_pattern, CANARY_EXAMPLES, spec, data_format)
    started = time.monotonic()
    try:
        timings = check(path_utils.serving_model_path(model.uri), examples, spec)
    except CanaryError as e:
        infra_blessing.set_int_custom_property('blessed', 0)
        _report(infra_blessing.uri, False, {'reason': str(e), 'seconds': round(time.monotonic() - started, 1)})
        return
    infra_blessing.set_int_custom_property('blessed', 1)
    _report(infra_blessing.uri, True, {'requests_ms': {k: round(v, 1) for k, v in timings.items()},
                                       'examples': len(examples), 'seconds': round(time.monotonic() - started, 1)})


def describe(report: Dict) -> str:
    """The console's figure of a canary report."""
    if not report['blessed']:
        return f'REFUSED: {report["reason"]}'
    requests = ', '.join(f'{name} {ms:.0f} ms' for name, ms in report['requests_ms'].items())
    return f'served in a new process in {report["seconds"]:.0f} s (warmup replayed; {requests})'
