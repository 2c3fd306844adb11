"""The SavedModel a trained model is served from: raw tf.Examples in, click probabilities out.

The Transform graph is inside, so clients send raw features: typed tf.Examples (list columns as int64, float or
bytes lists), whatever the format of the training data. For a model trained on CSV, whose Transform reads a list as
one space-separated string, the lists are joined into that form inside the graph. Signatures (the contract of
:mod:`serving.signatures`):

* ``serving_default(examples [N]) → probabilities [N]``: one full example per impression.
* ``rank(context [], candidates [N]) → probabilities [N]``: one request, N candidates. The context example holds
  the user, the behaviour sequence and the request context (the spec's :attr:`context_columns`), each candidate
  example the item features (:attr:`candidate_columns`). The context is parsed and transformed once, and the
  model's ``rank`` computes its user part once (the model split of DUPN: Ni et al., *Perceive Your Users in Depth:
  Learning Universal User Representations from Multiple E-commerce Tasks*, KDD 2018, §4.2). Equal to
  ``serving_default`` on the joined examples.
* ``evaluate_logged(examples [N]) → probabilities [N]``, for a model trained on CSV only: the logged examples as
  CsvExampleGen wrote them (lists as space-separated strings); TFMA evaluates through it (a TFRecord-trained
  model's Evaluator uses ``serving_default``).
* ``classification(inputs [N]) → classes, scores [N, 2]`` and ``regression(inputs [N]) → outputs [N]``: the
  same probabilities under TF Serving's Classify and Regress APIs (class "1" is a click).

A multi-head model's ``serving_default``, ``rank`` and ``evaluate_logged`` also return every served head by name
(``ctr``, ``cvr``, ``ctcvr``, …: the model's :meth:`~rec_models.base.RankingModel.served_heads`), each float
``[N]``; ``probabilities`` is the primary head's, and ``classification`` / ``regression`` serve it.

``assets.extra/tf_serving_warmup_requests`` holds one request per signature on logged examples, in TF Serving's
warmup format (PredictionLog records): TF Serving, and our server, replay it before serving the version.
"""

import functools
import itertools
import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, prediction_log_pb2, regression_pb2

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from feature_spec.model_inputs import ITEM
from rec_models import base
from rec_models import metrics
from serving import signatures
from serving.examples import read_csv, split_for_rank

WARMUP_BATCH = 64
EVALUATE_LOGGED = 'evaluate_logged'
SAMPLE_PREDICTIONS = 'sample_predictions.json'


class ServingModel(tf.Module):
    """Raw serialized tf.Examples → Transform graph → model → click probabilities, under every signature."""

    def __init__(self, model: tf.keras.Model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec,
                 data_format: str):
        super().__init__()
        # The Keras objects (the model and TFT's TransformFeaturesLayer, a Keras model too) are kept untracked and only
        # what the signatures need is saved: the model's variables and the Transform graph's resources (tables and
        # vocabulary assets). Tracked, the SavedModel would also hold Keras' own traces of their calls, which TF
        # Serving never runs and which took most of the export time.
        object.__setattr__(self, 'model', model)
        object.__setattr__(self, 'tft_layer', tft_output.transform_features_layer())
        self.track_model_variables()
        self.transform_resources = self.tft_layer._saved_model_loader_tracked_dict  # pylint: disable=protected-access
        parsing = schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD)
        self._parsing = parsing
        self._joined_lists = _joined_lists(spec, data_format)
        self._logged_parsing = schema_lib.serving_feature_spec(spec, data_format)
        self._evaluation_signature = evaluation_signature(data_format)
        self._context_parsing = {name: parsing[name] for name in spec.context_columns}
        self._candidate_parsing = {name: parsing[name] for name in spec.candidate_columns}
        self._candidate_features = tuple(c.name for c in spec.features if c.group == ITEM)
        self.heads = served_heads(model)
        self._sampling_rate = spec.negative_sampling_rate

    def track_model_variables(self) -> None:
        """Tracks the model's variables (by name: :func:`rec_models.base.variable_keys`); again once tracing has built
        a model that was not built yet."""
        setattr(self, base.EXPORTED_VARIABLES, base.variable_keys(self.model))

    def _transform(self, raw):
        return self.tft_layer(_join_lists(raw, self._joined_lists))

    def _served(self, outputs) -> Dict[str, tf.Tensor]:
        """``probabilities`` (the primary head) and every named head, each ``[N]``, calibrated (:func:`served`)."""
        return served(self.model, outputs, self._sampling_rate)

    def _outputs(self, serialized):
        raw = tf.io.parse_example(serialized, self._parsing)
        return self._served(self.model(self._transform(raw), training=False))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)])
    def serve(self, examples):
        return self._outputs(examples)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([], tf.string, name=signatures.CONTEXT),
                                  tf.TensorSpec([None], tf.string, name=signatures.CANDIDATES)])
    def rank(self, context, candidates):
        context_raw = _parse(context[tf.newaxis], self._context_parsing)
        candidate_raw = _parse(candidates, self._candidate_parsing)
        count = tf.shape(candidates)[0]
        # Transform runs row by row, so each part is transformed with placeholder values in the other part's
        # columns, and only its own outputs are kept.
        context_features = self._transform({**_placeholders(self._candidate_parsing, 1), **context_raw})
        candidate_features = self._transform({**_placeholders(self._context_parsing, count), **candidate_raw})
        context_features = {k: v for k, v in context_features.items() if k not in self._candidate_features}
        candidate_features = {k: candidate_features[k] for k in self._candidate_features}
        return self._served(self.model.rank(context_features, candidate_features))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)])
    def evaluate_logged(self, examples):
        raw = tf.io.parse_example(examples, self._logged_parsing)
        return self._served(self.model(self.tft_layer(raw), training=False))

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.CLASSIFY_INPUTS)])
    def classify(self, inputs):
        probabilities = self.serve(inputs)[signatures.PROBABILITIES]   # one trace of the model, called thrice
        classes = tf.constant([[b'0', b'1']])
        return {signatures.CLASSIFY_CLASSES: tf.tile(classes, [tf.shape(inputs)[0], 1]),
                signatures.CLASSIFY_SCORES: tf.stack([1.0 - probabilities, probabilities], axis=1)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name=signatures.REGRESS_INPUTS)])
    def regress(self, inputs):
        return {signatures.REGRESS_OUTPUTS: self.serve(inputs)[signatures.PROBABILITIES]}

    def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
        functions = {signatures.PREDICT: self.serve, signatures.RANK: self.rank,
                     signatures.CLASSIFY: self.classify, signatures.REGRESS: self.regress}
        if self._evaluation_signature == EVALUATE_LOGGED:
            functions[EVALUATE_LOGGED] = self.evaluate_logged
        return functions


def served_heads(model) -> Tuple[str, ...]:
    """The names of a model's served heads beyond ``probabilities`` (none for a single-head model)."""
    heads = getattr(model, 'served_heads', None)
    return tuple(h.name for h in heads(model.hparams) if h.name) if heads else ()


def evaluation_signature(data_format: str) -> str:
    """The signature the Evaluator scores the logged examples of ``data_format`` with."""
    return signatures.PREDICT if data_format == schema_lib.TFRECORD else EVALUATE_LOGGED


def _joined_lists(spec: spec_lib.FeatureSpec, data_format: str) -> Tuple[str, ...]:
    """The serving columns that are lists in a tf.Example but one space-separated string in ``data_format`` (every
    list column, in CSV)."""
    if data_format == schema_lib.TFRECORD:
        return ()
    typed = schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD)
    return tuple(name for name, feature in typed.items() if isinstance(feature, tf.io.VarLenFeature))


def _join_lists(raw: Dict, names: Sequence[str]) -> Dict:
    """``raw`` with each list column of ``names`` as CSV holds it: one space-separated string per row, absent (no
    value) for an empty list — what CsvExampleGen produced for the Transform graph to read."""
    if not names:
        return raw
    raw = dict(raw)
    for name in names:
        lists = tf.RaggedTensor.from_sparse(raw[name])
        if lists.dtype != tf.string:  # floats in full precision, which the Transform's string-to-number reads back
            text = functools.partial(tf.strings.as_string, **({} if lists.dtype.is_integer else
                                                            {'scientific': True, 'precision': 9}))
            lists = tf.ragged.map_flat_values(text, lists)
        joined = tf.strings.reduce_join(lists, axis=1, separator=' ')
        present = tf.where(lists.row_lengths() > 0)
        raw[name] = tf.SparseTensor(tf.concat([present, tf.zeros_like(present)], axis=1),
                                    tf.gather_nd(joined, present), tf.stack([lists.nrows(), tf.constant(1, tf.int64)]))
    return raw


def _parse(serialized, parsing: Dict) -> Dict:
    """``tf.io.parse_example``, and no features for an empty spec (e.g. a spec whose columns are all the item's)."""
    return tf.io.parse_example(serialized, parsing) if parsing else {}


def _placeholders(parsing: Dict, rows) -> Dict[str, tf.Tensor]:
    """Placeholder raw features for ``rows`` examples: zeros or empty strings, empty lists."""
    result = {}
    for name, feature in parsing.items():
        if isinstance(feature, tf.io.VarLenFeature):
            result[name] = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0], feature.dtype),
                                           tf.stack([tf.cast(rows, tf.int64), tf.constant(0, tf.int64)]))
        else:
            result[name] = tf.zeros(tf.stack([rows, *feature.shape]), feature.dtype)
    return result


def read_examples(file_pattern: str, count: int, spec: spec_lib.FeatureSpec = None,
                  data_format: str = schema_lib.TFRECORD) -> List[bytes]:
    """The first ``count`` examples of the files matching ``file_pattern``, serialized as served (typed lists):
    TFRecord records as they are, CSV rows (with a header) converted by the spec."""
    files = sorted(tf.io.gfile.glob(file_pattern))
    if data_format == schema_lib.TFRECORD:
        return [record.numpy() for record in tf.data.TFRecordDataset(files).take(count)]
    rows = (row for path in files for row in read_csv(path, spec))
    return list(itertools.islice(rows, count))


def predict_in_process(model: tf.keras.Model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec,
                       data_format: str, serialized: Sequence[bytes], head: str = signatures.PROBABILITIES
                       ) -> np.ndarray:
    """Probabilities of ``head`` (default: the primary) computed eagerly in this process: parse, Transform, model —
    outside any SavedModel."""
    return heads_in_process(model, tft_output, spec, data_format, serialized)[head]


def transform_in_process(tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec, data_format: str,
                         serialized: Sequence[bytes]) -> Dict[str, tf.Tensor]:
    """The transformed features of serialized examples (typed, as served), computed eagerly in this process."""
    raw = tf.io.parse_example(tf.constant(list(serialized)), schema_lib.serving_feature_spec(spec, schema_lib.TFRECORD))
    return tft_output.transform_raw_features(_join_lists(raw, _joined_lists(spec, data_format)),
                                             drop_unused_features=True)


def heads_in_process(model: tf.keras.Model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec,
                     data_format: str, serialized: Sequence[bytes]) -> Dict[str, np.ndarray]:
    """``{probabilities and every served head: [N]}`` computed eagerly in this process."""
    transformed = transform_in_process(tft_output, spec, data_format, serialized)
    outputs = served(model, model(transformed, training=False), spec.negative_sampling_rate)
    return {name: values.numpy() for name, values in outputs.items()}


def served(model, outputs, negative_sampling_rate: float = 1.0) -> Dict[str, tf.Tensor]:
    """What the signatures return of a model's outputs: ``probabilities`` and every named head, each ``[N]``. When
    the training data's negatives were kept at rate w < 1 (the spec's ``negative_sampling_rate``), the primary head
    (``probabilities`` and its name) is calibrated back to the unsampled data, q = p / (p + (1 − p) / w)
    (:func:`rec_models.metrics.calibrate_negative_sampling`); the other heads are served as trained."""
    heads = served_heads(model)
    result = {name: tf.reshape(outputs[name], [-1]) for name in (signatures.PROBABILITIES, *heads)}
    if negative_sampling_rate < 1.0:
        primary = model.served_heads(model.hparams)[0].name
        for name in (signatures.PROBABILITIES, primary):
            if name:
                result[name] = metrics.calibrate_negative_sampling(result[name], negative_sampling_rate)
    return result


def write_sample_predictions(model, tft_output, spec, data_format, serialized: Sequence[bytes], out_dir: str) -> str:
    """Records raw examples and their in-process predictions (``sample_predictions.json``), to check exported models
    against."""
    predictions = heads_in_process(model, tft_output, spec, data_format, serialized)
    path = os.path.join(out_dir, SAMPLE_PREDICTIONS)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(path, 'w') as f:
        json.dump({'examples': [s.hex() for s in serialized],
                   **{name: values.tolist() for name, values in predictions.items()}}, f)
    return path


def export_serving_model(model: tf.keras.Model, tft_output: tft.TFTransformOutput, spec: spec_lib.FeatureSpec,
                         data_format: str, export_dir: str, warmup_examples: Sequence[bytes] = ()) -> ServingModel:
    """Writes the SavedModel (every signature, TF Serving's method names, and the warmup requests when
    ``warmup_examples`` are given); returns the in-process serving module."""
    serving = ServingModel(model, tft_output, spec, data_format)
    functions = serving.signatures()
    for function in functions.values():
        function.get_concrete_function()   # builds a model not called yet
    serving.track_model_variables()
    tf.saved_model.save(serving, export_dir, signatures=functions)
    signatures.set_method_names(export_dir)
    if warmup_examples:
        write_warmup_requests(export_dir, warmup_requests(warmup_examples, spec))
    return serving


def warmup_requests(examples: Sequence[bytes], spec: spec_lib.FeatureSpec) -> List[prediction_log_pb2.PredictionLog]:
    """One warmup request per signature: Predict on one example and on a batch, rank of a batch of candidates
    against the first example's context, Classify and Regress on the batch."""
    batch = list(examples[:WARMUP_BATCH])
    context = split_for_rank(batch[0], spec)[0].SerializeToString()
    candidates = [split_for_rank(e, spec)[1].SerializeToString() for e in batch]
    logs = []
    for size in sorted({1, len(batch)}):
        request = _predict_request(signatures.PREDICT, {signatures.EXAMPLES: batch[:size]})
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    request = _predict_request(signatures.RANK, {signatures.CONTEXT: context, signatures.CANDIDATES: candidates})
    logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    example_list = [tf.train.Example.FromString(e) for e in batch]
    classify = classification_pb2.ClassificationRequest(
        model_spec=model_pb2.ModelSpec(signature_name=signatures.CLASSIFY))
    classify.input.example_list.examples.extend(example_list)
    logs.append(prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=classify)))
    regress = regression_pb2.RegressionRequest(model_spec=model_pb2.ModelSpec(signature_name=signatures.REGRESS))
    regress.input.example_list.examples.extend(example_list)
    logs.append(prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=regress)))
    return logs


def _predict_request(signature: str, inputs: Dict) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(value, dtype=object), dtype=tf.string))
    return request


def write_warmup_requests(export_dir: str, logs: Sequence[prediction_log_pb2.PredictionLog]) -> str:
    """Writes ``logs`` to ``export_dir/assets.extra/tf_serving_warmup_requests`` (a TFRecord file)."""
    path = os.path.join(export_dir, signatures.WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path
