"""Request and response conversion: TensorProtos ↔ numpy, checked against a signature, as TF Serving checks them.

Inputs are checked against the signature function's ``structured_input_signature`` TensorSpecs before anything is
allocated or run: input names (TF Serving's "input size does not match signature" message), dtype, shape, and the
size limits of :class:`Limits`. A failed check raises :class:`~serving.errors.ServingError` with
``INVALID_ARGUMENT`` (or ``RESOURCE_EXHAUSTED`` for a size limit) and a message naming the input.

Classify and Regress carry a ``tensorflow.serving.Input`` instead of tensors: :func:`serialized_examples` turns it
into the ``[N]`` string tensor of serialized ``tf.Example`` s, and :func:`classification_result` /
:func:`regression_result` check the outputs and build the result protos with TF Serving's messages.
"""

import dataclasses
import math
from typing import Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from serving import errors
from serving import signatures


@dataclasses.dataclass(frozen=True)
class Limits:
    """Size limits of one request.

    Attributes:
        max_rows: most rows (leading dimension of an input, or examples of a Classify/Regress input).
        max_elements: most elements of one input tensor (guards against a small proto with a huge declared shape).
    """
    max_rows: int = 100_000
    max_elements: int = 64 << 20


def input_specs(function) -> Dict[str, tf.TensorSpec]:
    """The named input TensorSpecs of a signature function of ``tf.saved_model.load``."""
    return dict(function.structured_input_signature[1])


def output_names(function) -> List[str]:
    """The sorted output names of a signature function."""
    return sorted(function.structured_outputs)


def to_arrays(specs: Mapping[str, tf.TensorSpec], protos: Mapping[str, tensor_pb2.TensorProto],
              limits: Limits) -> Dict[str, np.ndarray]:
    """Checks ``protos`` against the signature's ``specs`` and converts them to numpy arrays.

    Raises:
        ServingError: INVALID_ARGUMENT for missing or unknown inputs, a wrong dtype or shape, or an unparsable
            proto; RESOURCE_EXHAUSTED for an input over ``limits``.
    """
    if set(protos) != set(specs):
        sent, expected = sorted(protos), sorted(specs)
        raise errors.invalid_argument(
            f'input size does not match signature: {len(sent)}!={len(expected)} len({{{",".join(sent)}}}) != '
            f'len({{{",".join(expected)}}}). Sent extra: {{{",".join(sorted(set(sent) - set(expected)))}}}. '
            f'Missing but required: {{{",".join(sorted(set(expected) - set(sent)))}}}.')
    return {name: to_array(name, specs[name], protos[name], limits) for name in sorted(protos)}


def to_array(name: str, spec: tf.TensorSpec, proto: tensor_pb2.TensorProto, limits: Limits) -> np.ndarray:
    """One input: dtype, shape and size checked before the proto is expanded into an array."""
    if proto.dtype != spec.dtype.as_datatype_enum:
        raise errors.invalid_argument(
            f"input '{name}': expected dtype {spec.dtype.name}, got {_dtype_name(proto.dtype)}")
    if proto.tensor_shape.unknown_rank:
        raise errors.invalid_argument(f'tensor parsing error: {name}: the tensor_shape has unknown rank')
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        raise errors.invalid_argument(f'tensor parsing error: {name}: negative dimension in shape {shape}')
    if not spec.shape.is_compatible_with(shape):
        raise errors.invalid_argument(f"input '{name}': expected shape {_shape_name(spec.shape)}, got {shape}")
    if shape:
        check_rows(shape[0], limits, f"input '{name}'")
    elements = math.prod(shape)
    if elements > limits.max_elements:
        raise errors.resource_exhausted(
            f"input '{name}': {elements} elements exceed the limit of {limits.max_elements} elements per input")
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # pylint: disable=broad-except  (any malformed proto is the client's error)
        raise errors.invalid_argument(f'tensor parsing error: {name}: {e}') from e


def check_rows(rows: int, limits: Limits, what: str) -> None:
    """Raises RESOURCE_EXHAUSTED when ``rows`` is over the per-request row limit."""
    if rows > limits.max_rows:
        raise errors.resource_exhausted(f'{what}: {rows} rows exceed the limit of {limits.max_rows} rows per request')


def select_outputs(names: Sequence[str], output_filter: Sequence[str]) -> List[str]:
    """The outputs a Predict request asks for: ``output_filter`` checked as TF Serving checks it, else all."""
    if not output_filter:
        return list(names)
    selected = []
    for alias in output_filter:
        if alias not in names:
            raise errors.invalid_argument(f'output tensor alias not found in signature: {alias} Outputs expected to '
                                          f'be in the set {{{",".join(sorted(names))}}}.')
        if alias in selected:
            raise errors.invalid_argument(f'duplicate output tensor alias: {alias}')
        selected.append(alias)
    return selected


def to_protos(arrays: Mapping[str, np.ndarray]) -> Dict[str, tensor_pb2.TensorProto]:
    """Output arrays as TensorProtos with the values in the typed field (``float_val``, ``string_val``, ...), as TF
    Serving writes them (``Tensor::AsProtoField``), so clients that read those fields directly work too."""
    return {name: to_proto(array) for name, array in arrays.items()}


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """One array as a TensorProto, values in the typed field (``tensor_content`` only for other dtypes)."""
    dtype = tf.as_dtype(array.dtype) if array.dtype != object else tf.string
    field = _VALUE_FIELDS.get(dtype)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape)
    getattr(proto, field).extend(array.ravel().tolist())
    return proto


def serialized_examples(model_input: input_pb2.Input, limits: Limits) -> np.ndarray:
    """The ``[N]`` string array of serialized ``tf.Example`` s of a Classify/Regress ``Input``.

    With ``example_list_with_context`` each element is the serialized context followed by the serialized example,
    exactly as TF Serving builds it: parsing merges the two, and a feature in both takes the example's value.
    """
    kind = model_input.WhichOneof('kind')
    if kind == 'example_list':
        examples = [example.SerializeToString() for example in model_input.example_list.examples]
    elif kind == 'example_list_with_context':
        with_context = model_input.example_list_with_context
        context = with_context.context.SerializeToString()
        examples = [context + example.SerializeToString() for example in with_context.examples]
    else:
        examples = []
    if not examples:
        raise errors.invalid_argument('Input is empty.')
    check_rows(len(examples), limits, 'input examples')
    return np.array(examples, dtype=object)


def check_classify_signature(signature_def) -> None:
    """Raises TF Serving's error when ``signature_def`` is not a classify signature with input ``inputs`` and
    outputs ``classes`` and/or ``scores``."""
    _check_method(signature_def, signatures.CLASSIFY_METHOD, 'classification')
    if len(signature_def.outputs) not in (1, 2):
        raise errors.invalid_argument(f'Expected one or two output Tensors, found {len(signature_def.outputs)}')
    if signatures.CLASSIFY_INPUTS not in signature_def.inputs:
        raise errors.failed_precondition(f'No classification inputs found in SignatureDef: {signature_def}')
    if not {signatures.CLASSIFY_CLASSES, signatures.CLASSIFY_SCORES} & set(signature_def.outputs):
        raise errors.failed_precondition(
            f'Expected classification signature outputs to contain at least one of "{signatures.CLASSIFY_CLASSES}" '
            f'or "{signatures.CLASSIFY_SCORES}". Signature was: {signature_def}')


def check_regress_signature(signature_def) -> None:
    """Raises TF Serving's error when ``signature_def`` is not a regress signature with input ``inputs`` and
    output ``outputs``."""
    _check_method(signature_def, signatures.REGRESS_METHOD, 'regression')
    if len(signature_def.outputs) != 1:
        raise errors.invalid_argument('Expected one output Tensor.')
    if signatures.REGRESS_INPUTS not in signature_def.inputs:
        raise errors.failed_precondition(f'No regression inputs found in SignatureDef: {signature_def}')
    if signatures.REGRESS_OUTPUTS not in signature_def.outputs:
        raise errors.failed_precondition(f'No regression outputs found in SignatureDef: {signature_def}')


def _check_method(signature_def, method: str, api: str) -> None:
    if signature_def.method_name != method:
        raise errors.invalid_argument(f'Expected {api} signature method_name to be {method}. '
                                      f'Was: {signature_def.method_name}')
    if len(signature_def.inputs) != 1:
        raise errors.invalid_argument('Expected one input Tensor.')


def classification_result(outputs: Mapping[str, np.ndarray], num_examples: int
                          ) -> classification_pb2.ClassificationResult:
    """The ClassificationResult of a classify signature's ``classes`` [N, C] strings and/or ``scores`` [N, C]."""
    classes = outputs.get(signatures.CLASSIFY_CLASSES)
    scores = outputs.get(signatures.CLASSIFY_SCORES)
    for key, array, dtype, dtype_name in ((signatures.CLASSIFY_CLASSES, classes, np.object_, 'DT_STRING'),
                                          (signatures.CLASSIFY_SCORES, scores, np.float32, 'DT_FLOAT')):
        if array is None:
            continue
        if array.ndim != 2:
            raise errors.invalid_argument(
                f'Expected Tensor shape: [batch_size num_classes] but got {list(array.shape)}')
        if array.dtype != dtype:
            raise errors.invalid_argument(f'Expected {key} Tensor of {dtype_name}. Got: {array.dtype}')
        if array.shape[0] != num_examples:
            raise errors.invalid_argument(f'Expected {key} output batch size of {num_examples}. '
                                          f'Got: {array.shape[0]}')
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise errors.invalid_argument('Tensors class and score should match in dim_size(1). '
                                      f'Got {classes.shape[1]} vs. {scores.shape[1]}')
    num_classes = (classes if classes is not None else scores).shape[1]
    result = classification_pb2.ClassificationResult()
    for i in range(num_examples):
        classifications = result.classifications.add()
        for c in range(num_classes):
            item = classifications.classes.add()
            if classes is not None:
                item.label = classes[i, c].decode('utf-8', 'replace')
            if scores is not None:
                item.score = scores[i, c]
    return result


def regression_result(outputs: Mapping[str, np.ndarray], num_examples: int) -> regression_pb2.RegressionResult:
    """The RegressionResult of a regress signature's ``outputs``, float [N] or [N, 1]."""
    values = outputs[signatures.REGRESS_OUTPUTS]
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise errors.invalid_argument('Expected output Tensor shape to be either [batch_size] or [batch_size, 1] '
                                      f'but got {list(values.shape)}')
    if values.shape[0] != num_examples:
        raise errors.invalid_argument(f'Input batch size did not match output batch size: {num_examples} vs. '
                                      f'{values.shape[0]}')
    if values.dtype != np.float32:
        raise errors.invalid_argument(f'Expected output Tensor of DT_FLOAT.  Got: {values.dtype}')
    result = regression_pb2.RegressionResult()
    for value in values.reshape(-1):
        result.regressions.add().value = value
    return result


_VALUE_FIELDS = {
    tf.float32: 'float_val', tf.float64: 'double_val', tf.int32: 'int_val', tf.int16: 'int_val', tf.int8: 'int_val',
    tf.uint8: 'int_val', tf.uint16: 'int_val', tf.int64: 'int64_val', tf.uint32: 'uint32_val',
    tf.uint64: 'uint64_val', tf.bool: 'bool_val', tf.string: 'string_val',
}


def _dtype_name(enum: int) -> str:
    try:
        return tf.as_dtype(enum).name
    except TypeError:
        return f'DataType {enum}'


def _shape_name(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return '<unknown rank>'
    return '[' + ', '.join('?' if size is None else str(size) for size in shape.as_list()) + ']'
