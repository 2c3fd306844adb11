"""The Evaluator's TFMA configuration and the GAUC metric.

Metrics, overall and sliced by position: AUC, log loss, calibration (mean prediction / mean label), example
count, and GAUC (DIN paper, seed ``003``): GAUC = Σ_u n_u·AUC_u / Σ_u n_u over the users u that have both
clicks and non-clicks, n_u their impressions.

Blessing: the candidate's AUC must clear an absolute floor and must not fall below the last blessed model's.
"""

import json
from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.utils import util as tfma_util

from feature_spec import spec as spec_lib
from rec_models import metrics as rec_metrics
from serving import signatures

GAUC_NAME = 'gauc'
AUC_NAME = 'auc'
LOGLOSS_NAME = 'logloss'


class GAUC(metric_types.Metric):
    """Impression-weighted mean of per-group AUCs (groups with a single class skipped)."""

    def __init__(self, name: str = GAUC_NAME, group_key: str = 'user_id'):
        super().__init__(_gauc_computations, name=name, group_key=group_key)


metric_types.register_metric(GAUC)


def _gauc_computations(name: str = GAUC_NAME, group_key: str = 'user_id', eval_config=None,
                       model_names: Optional[List[str]] = None, output_names: Optional[List[str]] = None,
                       example_weighted: bool = False) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or ['']:
        for output_name in output_names or ['']:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[group_key])],
                combiner=_GAUCCombiner(key, eval_config, group_key)))
    return computations


class _GAUCCombiner(beam.CombineFn):
    """Collects (group, label, prediction) of every example of a slice; GAUC is computed at the end."""

    def __init__(self, key: metric_types.MetricKey, eval_config, group_key: str):
        self._key = key
        self._eval_config = eval_config
        self._group_key = group_key

    def create_accumulator(self):
        return [[], [], []]

    def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
        group = tfma_util.get_by_keys(element.features, [self._group_key])
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, flatten=True):
            accumulator[0].append(np.asarray(group).reshape(-1)[0])
            accumulator[1].append(float(label))
            accumulator[2].append(float(prediction))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for column, values in zip(merged, accumulator):
                column.extend(values)
        return merged

    def extract_output(self, accumulator) -> Dict[metric_types.MetricKey, float]:
        groups, labels, predictions = accumulator
        if not groups:
            return {self._key: float('nan')}
        return {self._key: rec_metrics.gauc(labels, predictions, groups)}


def eval_config(spec: spec_lib.FeatureSpec, auc_floor: float, signature_name: str = signatures.PREDICT
                ) -> tfma.EvalConfig:
    """TFMA config: the probabilities of the model's signature ``signature_name`` (one that reads the logged
    examples as the data holds them) against the primary label, overall and by position."""
    slicing = [tfma.SlicingSpec()]
    positions = spec.of_kind(spec_lib.POSITION)
    if positions:
        slicing.append(tfma.SlicingSpec(feature_keys=[positions[0].source]))
    metrics = [
        tfma.MetricConfig(class_name='ExampleCount'),
        tfma.MetricConfig(class_name='AUC', config=json.dumps({'name': AUC_NAME, 'num_thresholds': 10000}),
                          per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                              slicing_specs=[tfma.SlicingSpec()],  # the blessing judges the overall slice only
                              threshold=tfma.MetricThreshold(
                                  value_threshold=tfma.GenericValueThreshold(lower_bound={'value': auc_floor}),
                                  change_threshold=tfma.GenericChangeThreshold(
                                      direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                      absolute={'value': -1e-10})))]),
        tfma.MetricConfig(class_name='BinaryCrossentropy', config=json.dumps({'name': LOGLOSS_NAME})),
        tfma.MetricConfig(class_name='Calibration'),
        tfma.MetricConfig(class_name='MeanPrediction'),
        tfma.MetricConfig(class_name='MeanLabel'),
    ]
    if spec.gauc_group:
        metrics.append(tfma.MetricConfig(class_name='GAUC', module=__name__,
                                         config=json.dumps({'group_key': spec.gauc_group})))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=signature_name, label_key=spec.labels[0],
                                    prediction_key=signatures.PROBABILITIES, preprocessing_function_names=[])],
        slicing_specs=slicing, metrics_specs=[tfma.MetricsSpec(metrics=metrics)])


def overall_metrics(eval_result_uri: str) -> Dict[str, float]:
    """The overall slice's metrics of an Evaluator output, by name."""
    result = tfma.load_eval_result(eval_result_uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key == ():
            values = next(iter(next(iter(metrics.values())).values()))
            return {name: _value(value) for name, value in values.items()}
    raise ValueError(f'{eval_result_uri}: no overall slice in the evaluation')


def _value(value):
    if isinstance(value, dict) and 'doubleValue' in value:
        return value['doubleValue']
    return value
