"""Predict, Classify and Regress on one loaded version: the single code path of gRPC, REST and warmup requests.

Each call resolves the signature (empty name = ``serving_default``), converts and checks the request
(:mod:`serving.tensors`), runs the signature function (through the :class:`~serving.batching.Batcher` when
batching is on and the signature is batch-major), and builds the response with the ``model_spec`` it was served by,
as TF Serving fills it. Every failure is raised as a :class:`~serving.errors.ServingError`.
"""

import functools
from typing import Dict, Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, regression_pb2

from serving import batching
from serving import errors
from serving import signatures
from serving import tensors


class Inference:
    """Runs requests on a :class:`serving.model_manager.LoadedVersion`.

    Args:
        limits: per-request size limits.
        batcher: server-side batching, or None to run every request on its own.
    """

    def __init__(self, limits: tensors.Limits, batcher: Optional[batching.Batcher] = None):
        self.limits = limits
        self._batcher = batcher

    def predict(self, version, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Runs a PredictRequest. An unknown signature is INVALID_ARGUMENT (a bad request, like every other), with
        TF Serving's message; TF Serving itself answers FAILED_PRECONDITION there."""
        name = request.model_spec.signature_name or signatures.PREDICT
        function = version.signatures.get(name)
        if function is None:
            raise errors.invalid_argument(f'Serving signature key "{name}" not found.')
        specs = tensors.input_specs(function)
        arrays = tensors.to_arrays(specs, request.inputs, self.limits)
        selected = tensors.select_outputs(tensors.output_names(function), request.output_filter)
        outputs = self._run(version, name, function, arrays)
        response = predict_pb2.PredictResponse()
        _fill_model_spec(response.model_spec, request.model_spec.name, version.version, name)
        for key, proto in tensors.to_protos({key: outputs[key] for key in selected}).items():
            response.outputs[key].CopyFrom(proto)
        return response

    def classify(self, version, request: classification_pb2.ClassificationRequest
                 ) -> classification_pb2.ClassificationResponse:
        """Runs a ClassificationRequest on a signature with the classify method name."""
        return self._run_on_examples(version, request, tensors.check_classify_signature, signatures.CLASSIFY_INPUTS,
                                     classification_pb2.ClassificationResponse(), tensors.classification_result)

    def regress(self, version, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        """Runs a RegressionRequest on a signature with the regress method name."""
        return self._run_on_examples(version, request, tensors.check_regress_signature, signatures.REGRESS_INPUTS,
                                     regression_pb2.RegressionResponse(), tensors.regression_result)

    def _run_on_examples(self, version, request, check, input_key: str, response, to_result):
        """Classify and Regress: the request's tf.Examples as the signature's one string input; the result proto
        built by ``to_result(outputs, count)``."""
        name, function = self._example_signature(version, request.model_spec, check)
        examples = tensors.serialized_examples(request.input, self.limits)
        outputs = self._run(version, name, function, {input_key: examples})
        _fill_model_spec(response.model_spec, request.model_spec.name, version.version, name)
        response.result.CopyFrom(to_result(outputs, len(examples)))
        return response

    @staticmethod
    def _example_signature(version, model_spec: model_pb2.ModelSpec, check):
        name = model_spec.signature_name or signatures.PREDICT
        signature_def = version.signature_defs.get(name)
        function = version.signatures.get(name)
        if signature_def is None or function is None:
            raise errors.invalid_argument(f'No signature was found with the name: {name}')
        check(signature_def)
        return name, function

    def _run(self, version, name: str, function, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        run = functools.partial(_call, function)
        try:
            if self._batcher is not None and batching.batchable(tensors.input_specs(function)):
                return self._batcher.run((version, name), run, arrays)
            return run(arrays)
        except errors.ServingError:
            raise
        except Exception as e:  # pylint: disable=broad-except  (converted to the status the client gets)
            raise errors.from_exception(e) from e


def _call(function, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Calls a signature function on numpy inputs (already checked against its specs); numpy outputs."""
    specs = tensors.input_specs(function)
    try:
        outputs = function(**{key: tf.convert_to_tensor(value, dtype=specs[key].dtype)
                              for key, value in inputs.items()})
    except UnicodeDecodeError as e:
        # TensorFlow quoted raw input bytes in its error message (e.g. an unparsable tf.Example) and could not raise
        # it; such messages come from ops rejecting their input, so the code is INVALID_ARGUMENT.
        raise errors.invalid_argument(bytes(e.object).decode('utf-8', 'replace')) from e
    return {key: value.numpy() for key, value in outputs.items()}


def _fill_model_spec(spec: model_pb2.ModelSpec, model_name: str, version: int, signature_name: str) -> None:
    spec.name = model_name
    spec.version.value = version
    spec.signature_name = signature_name
