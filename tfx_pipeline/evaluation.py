"""The Evaluator's TFMA configuration.

Metrics of every served head against its label, overall and sliced by position: AUC, log loss, calibration (mean
prediction / mean label), mean prediction and label, example count, GAUC (Zhou et al., DIN, KDD 2018: GAUC =
Σ_u n_u·AUC_u / Σ_u n_u over the users u that have both clicks and non-clicks, n_u their impressions), and, for
the primary head, csAUC (the bids of the spec's ``weight`` column) and COEC (clicks over position-expected clicks,
the expected CTR of each position from the training data: :func:`position_ctr`). The custom metrics are in
:mod:`tfx_pipeline.tfma_metrics`.
A head with a condition (pCVR: the conversion given a click) is evaluated over every impression and also in the
slice where the condition's label is 1. A head whose counterfactual role the spec names (``relevance``: the
generator's click-if-examined draws; ``conversion_if_clicked``) is also evaluated against those labels, read from
the examples (``<role>_auc``): the relevance AUC of a debiased model, the entire-space AUC of a pCVR.

A single-head model keeps TFMA's single-output form (output name ``''``); a multi-head model's metrics are keyed
by output (:func:`overall_metrics` names them ``<head>_<metric>``, and the primary head's also plainly).

The primary head also gets TFMA's calibration plot (:data:`CALIBRATION_PLOT_NAME`: :data:`CALIBRATION_BUCKETS`
equal-width buckets of the prediction over [0, 1], each with its example count, label sum and prediction sum), read
back by :func:`calibration_buckets` for the run's report's reliability diagram (:mod:`tfx_pipeline.report`).
:func:`slice_metrics` reads every slice's metrics (the report's tables, the board's per-slice scalars).

No "new items" slice: TFMA slices the Evaluator's raw test examples by their columns, and the data has no is-new
column: a new item is one outside the vocabulary Transform computes on ``train`` (the synthetic generator's
``new_item_fraction`` items appear during the log and are not marked in it; the retrieval Evaluator, which reads
Transform's vocabulary, slices its Recall@K by them: ``new_items_recall_at_K``).

Blessing: the primary head's AUC must clear an absolute floor and must not fall below the last blessed model's;
``head_floors`` adds a floor on other heads' AUC.
"""

import glob
import json
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from rec_models.tasks import Head
from serving import signatures
from tfx_pipeline import tfma_metrics

AUC_NAME = 'auc'
GAUC_NAME = tfma_metrics.GAUC_NAME
LOGLOSS_NAME = 'logloss'
CALIBRATION_PLOT_NAME = 'calibration_plot'
CALIBRATION_BUCKETS = 1000   # fine equal-width buckets: a reader merges them into as many as its plot needs
OVERALL = 'overall'          # slice_metrics' label of the overall slice
POSITION_CTR_ROWS = 2_000_000   # the training rows position_ctr reads at most


def eval_config(spec: spec_lib.FeatureSpec, auc_floor: float, signature_name: str = signatures.PREDICT,
                heads: Sequence[Head] = (Head(),), head_floors: Optional[Mapping[str, float]] = None,
                expected_ctr: Optional[Mapping[int, float]] = None) -> tfma.EvalConfig:
    """TFMA config: every head's probabilities from the model's signature ``signature_name`` (one that reads the
    logged examples as the data holds them) against the head's label, overall and by position.

    Args:
        heads: the model's served heads, the primary first (``RankingModel.served_heads``).
        head_floors: ``{head name: AUC floor}`` for heads other than the primary.
        expected_ctr: ``{raw position: CTR}`` of the training data, for COEC (:func:`position_ctr`).
    """
    head_floors = dict(head_floors or {})
    unknown = sorted(set(head_floors) - {h.name for h in heads[1:]})
    if unknown:
        raise ValueError(f'evaluation.head_floors: {unknown} are not heads of the model besides the primary '
                         f'(heads: {[h.name for h in heads]})')
    slicing = [tfma.SlicingSpec()]
    positions = spec.of_kind(spec_lib.POSITION)
    if positions:
        slicing.append(tfma.SlicingSpec(feature_keys=[positions[0].source]))
    for condition in dict.fromkeys(h.condition for h in heads if h.condition):
        slicing.append(tfma.SlicingSpec(feature_keys=[spec.label_for(condition)]))
    if len(heads) == 1 and not heads[0].name:
        model_spec = tfma.ModelSpec(signature_name=signature_name, label_key=spec.label_for(heads[0].role),
                                    prediction_key=signatures.PROBABILITIES, preprocessing_function_names=[])
        return tfma.EvalConfig(model_specs=[model_spec], slicing_specs=slicing, metrics_specs=[
            tfma.MetricsSpec(metrics=_metrics(spec, heads[0], auc_floor, True, expected_ctr))])
    model_spec = tfma.ModelSpec(signature_name=signature_name,
                                label_keys={h.output: spec.label_for(h.role) for h in heads},
                                prediction_keys={h.output: h.output for h in heads}, preprocessing_function_names=[])
    metrics_specs = [tfma.MetricsSpec(output_names=[heads[0].output],
                                      metrics=_metrics(spec, heads[0], auc_floor, True, expected_ctr))]
    metrics_specs += [tfma.MetricsSpec(output_names=[h.output], metrics=_metrics(spec, h, head_floors.get(h.name)))
                      for h in heads[1:]]
    return tfma.EvalConfig(model_specs=[model_spec], slicing_specs=slicing, metrics_specs=metrics_specs)


def _metrics(spec: spec_lib.FeatureSpec, head: Head, auc_floor: Optional[float], primary: bool = False,
             expected_ctr: Optional[Mapping[int, float]] = None) -> List[tfma.MetricConfig]:
    """The metrics of one head; its AUC must clear ``auc_floor`` (when given) and, for the ``primary`` head, not
    fall below the last blessed model's (the blessing judges the overall slice only). A head whose counterfactual role
    the spec names gets ``<role>_auc`` against those labels; the primary head also gets csAUC (when the spec has a
    weight column) and COEC (with ``expected_ctr``)."""
    thresholds = []
    if auc_floor is not None:
        threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={'value': auc_floor}))
        if primary:
            threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={'value': -1e-10}))
        thresholds.append(tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold))
    metrics = [
        tfma.MetricConfig(class_name='ExampleCount'),
        tfma.MetricConfig(class_name='AUC', config=json.dumps({'name': AUC_NAME, 'num_thresholds': 10000}),
                          per_slice_thresholds=thresholds),
        tfma.MetricConfig(class_name='BinaryCrossentropy', config=json.dumps({'name': LOGLOSS_NAME})),
        tfma.MetricConfig(class_name='Calibration'),
        tfma.MetricConfig(class_name='MeanPrediction'),
        tfma.MetricConfig(class_name='MeanLabel'),
    ]
    if spec.gauc_group:
        metrics.append(tfma.MetricConfig(class_name='GAUC', module=tfma_metrics.__name__,
                                         config=json.dumps({'group_key': spec.gauc_group})))
    if head.counterfactual in spec.roles:
        metrics.append(tfma.MetricConfig(class_name='FeatureLabelAUC', module=tfma_metrics.__name__, config=json.dumps(
            {'name': f'{head.counterfactual}_auc', 'label_key': spec.label_for(head.counterfactual)})))
    if primary:
        weights = spec.of_kind(spec_lib.WEIGHT)
        if weights:
            metrics.append(tfma.MetricConfig(class_name='CsAUC', module=tfma_metrics.__name__,
                                             config=json.dumps({'bid_key': weights[0].source})))
        positions = spec.of_kind(spec_lib.POSITION)
        if positions and expected_ctr:
            metrics.append(tfma.MetricConfig(class_name='COEC', module=tfma_metrics.__name__, config=json.dumps(
                {'position_key': positions[0].source, 'expected_ctr': {str(k): v for k, v in expected_ctr.items()}})))
        metrics.append(tfma.MetricConfig(class_name='CalibrationPlot', config=json.dumps(
            {'name': CALIBRATION_PLOT_NAME, 'num_buckets': CALIBRATION_BUCKETS})))
    return metrics


def position_ctr(spec: spec_lib.FeatureSpec, train_pattern: str, data_format: str,
                 rows: int = POSITION_CTR_ROWS) -> Dict[int, float]:
    """``{raw position: CTR}`` of the primary label in the first ``rows`` examples of the training files (COEC's
    expected CTR per position; the first method of the COEC note of the seed write-ups); empty when the spec has no
    position or the files no rows."""
    positions = spec.of_kind(spec_lib.POSITION)
    files = sorted(glob.glob(train_pattern))
    if not positions or not files:
        return {}
    position, label = positions[0].source, spec.labels[0]
    if data_format == schema_lib.CSV:
        columns = sorted((index, name) for name, index in _csv_columns(files[0], (position, label)).items())
        dataset = tf.data.experimental.CsvDataset(files, [tf.int64] * 2, header=True,
                                                  select_cols=[index for index, _ in columns])
        batches = dataset.take(rows).batch(65_536).map(lambda *values: {
            name: value for (_, name), value in zip(columns, values)})
    else:
        parsing = {name: tf.io.FixedLenFeature([], tf.int64) for name in (position, label)}
        compression = 'GZIP' if files[0].endswith('.gz') else None
        batches = tf.data.TFRecordDataset(files, compression_type=compression).take(rows).batch(65_536).map(
            lambda batch: tf.io.parse_example(batch, parsing))
    clicks, counts = {}, {}
    for batch in batches:
        values, index = np.unique(batch[position].numpy(), return_inverse=True)
        for value, total, count in zip(values, np.bincount(index, batch[label].numpy()), np.bincount(index)):
            clicks[int(value)] = clicks.get(int(value), 0.0) + float(total)
            counts[int(value)] = counts.get(int(value), 0) + int(count)
    return {value: clicks[value] / counts[value] for value in sorted(counts)}


def _csv_columns(path: str, names) -> Dict[str, int]:
    """``{name: column index}`` of ``names`` in the header of the CSV file ``path``."""
    with open(path) as f:
        header = f.readline().rstrip('\n').split(',')
    return {name: header.index(name) for name in names}


def overall_metrics(eval_result_uri: str, heads: Sequence[Head] = (Head(),),
                    spec: Optional[spec_lib.FeatureSpec] = None) -> Dict[str, float]:
    """The metrics of an Evaluator output by name: the primary head's plainly (``auc``, ``gauc``, ``relevance_auc``,
    …), every named head's as ``<head>_<metric>``, and a conditioned head's in its condition's slice as
    ``<head>_<metric>_given_<role>`` (with ``spec`` to name the condition's label)."""
    result = tfma.load_eval_result(eval_result_uri)
    named = {}
    conditions = {h.output: spec.label_for(h.condition) for h in heads if h.condition and spec is not None}
    for slice_key, metrics in result.slicing_metrics:
        for output_name, by_class in metrics.items():
            values = {name: _value(value) for name, value in next(iter(by_class.values())).items()}
            if slice_key == ():
                named.update(_by_head(output_name, values, heads))
            elif output_name in conditions and slice_key == ((conditions[output_name], 1),):
                role = next(h.condition for h in heads if h.output == output_name)
                named.update({f'{output_name}_{name}_given_{role}': value for name, value in values.items()})
    if not named:
        raise ValueError(f'{eval_result_uri}: no overall slice in the evaluation')
    return named


def _by_head(output_name: str, values: Dict[str, object], heads: Sequence[Head]) -> Dict[str, object]:
    """One output's metrics named as :func:`overall_metrics` names them: the primary head's plainly, a named head's
    as ``<head>_<metric>`` (the primary's both ways)."""
    named = {}
    if output_name in ('', heads[0].output):
        named.update(values)
    if output_name and output_name != signatures.PROBABILITIES:
        named.update({f'{output_name}_{name}': value for name, value in values.items()})
    return named


def baseline_model_name(eval_result_uri: str) -> Optional[str]:
    """The TFMA model name of the baseline an Evaluator output compared its candidate with (the model's last blessed
    version, :mod:`tfx_pipeline.pipeline`); None when it had none (the model's first blessing)."""
    from tensorflow_model_analysis.writers import eval_config_writer  # pylint: disable=g-import-not-at-top
    config = eval_config_writer.load_eval_run(eval_result_uri)[0]
    return next((spec.name for spec in config.model_specs if spec.is_baseline), None)


def slice_label(slice_key) -> str:
    """``overall`` for TFMA's overall slice ``()``, else ``column=value`` pairs joined by ``, `` (``position=3``)."""
    if not slice_key:
        return OVERALL
    return ', '.join(f'{column}={value.decode() if isinstance(value, bytes) else value}' for column, value in slice_key)


def slice_metrics(eval_result_uri: str, heads: Sequence[Head] = (Head(),),
                  baseline: bool = False) -> Dict[str, Dict[str, float]]:
    """``{slice label: {metric: value}}`` of an Evaluator output: every slice of :func:`eval_config` (overall, each
    position, each condition label's values), labelled by :func:`slice_label`, overall first, then by column and
    value.

    The metrics are named as :func:`overall_metrics` names them (the primary head's plainly, every named head's as
    ``<head>_<metric>``), numeric values only (plots are read by :func:`calibration_buckets`). When the Evaluator
    compared the model with a baseline, the candidate's metrics also hold TFMA's ``<metric>_diff`` (candidate −
    baseline); ``baseline=True`` returns the baseline model's own metrics instead (ValueError when there was none).

    Choice: one flat dict a slice, keyed like the summary's metrics, so that a table (the report) or a scalar
    writer (TensorBoard: ``<slice>/<metric>``) reads it without knowing TFMA's nesting of models, outputs and
    sub-keys."""
    model_name = None
    if baseline:
        model_name = baseline_model_name(eval_result_uri)
        if model_name is None:
            raise ValueError(f'{eval_result_uri}: the Evaluator compared with no baseline model')
    result = tfma.load_eval_result(eval_result_uri, model_name=model_name)
    slices = {}
    for slice_key, metrics in result.slicing_metrics:
        named = slices.setdefault(tuple(slice_key), {})
        for output_name, by_class in (metrics or {}).items():
            values = {name: _value(value) for name, value in next(iter(by_class.values())).items()}
            named.update({name: float(value) for name, value in _by_head(output_name, values, heads).items()
                          if isinstance(value, (int, float)) and not isinstance(value, bool)})
    if () not in slices:
        raise ValueError(f'{eval_result_uri}: no overall slice in the evaluation')
    return {slice_label(key): slices[key] for key in sorted(slices, key=_slice_order)}


def _slice_order(slice_key):
    """Overall first, then by columns, then by value (numbers numerically)."""
    return (len(slice_key), [column for column, _ in slice_key],
            [(0, value, '') if isinstance(value, (int, float)) else (1, 0, str(value)) for _, value in slice_key])


class CalibrationBucket(NamedTuple):
    """One bucket of TFMA's calibration plot: predictions in [lower, upper), their count, label sum and prediction
    sum (example-weighted; the Evaluator has no weights, so counts)."""
    lower: float
    upper: float
    count: float
    label_sum: float
    prediction_sum: float


def calibration_buckets(eval_result_uri: str, output_name: str = '') -> List[CalibrationBucket]:
    """The non-empty buckets of the candidate's calibration plot (:data:`CALIBRATION_PLOT_NAME`) of output
    ``output_name`` (``''``: a single-head model; a multi-head model's primary head: its name) in the overall slice,
    by prediction. ValueError when the output has none (an evaluation from before the plot was configured)."""
    from tensorflow_model_analysis.slicer import slicer_lib  # pylint: disable=g-import-not-at-top
    excluded = baseline_model_name(eval_result_uri)
    for plots in tfma.load_plots(eval_result_uri):
        if slicer_lib.deserialize_slice_key(plots.slice_key) != ():
            continue
        for key_and_value in plots.plot_keys_and_values:
            key = key_and_value.key
            if (key.name in ('', CALIBRATION_PLOT_NAME) and key.output_name == output_name
                    and (excluded is None or key.model_name != excluded)
                    and key_and_value.value.HasField('calibration_histogram_buckets')):
                return [CalibrationBucket(b.lower_threshold_inclusive, b.upper_threshold_exclusive,
                                          b.num_weighted_examples.value, b.total_weighted_label.value,
                                          b.total_weighted_refined_prediction.value)
                        for b in key_and_value.value.calibration_histogram_buckets.buckets
                        if b.num_weighted_examples.value > 0]
    raise ValueError(f'{eval_result_uri}: no calibration plot of output {output_name!r} in the overall slice')


def _value(value):
    if isinstance(value, dict) and 'doubleValue' in value:
        return value['doubleValue']
    return value
