"""The Evaluator's own TFMA metrics, each computed by its NumPy definition in :mod:`rec_models.metrics` over a
slice's examples:

* ``GAUC``: the impression-weighted mean of per-user AUCs (``group_key``: the spec's ``gauc_group``);
* ``CsAUC``: the CPM-sensitive AUC, bids from ``bid_key`` (the spec's ``weight`` column);
* ``COEC``: clicks over the clicks the positions lead one to expect, ``expected_ctr`` ``{position: CTR}`` from the
  training data (:func:`tfx_pipeline.evaluation.position_ctr`);
* ``FeatureLabelAUC``: the AUC of the predictions against a column of the examples other than the head's label
  (the counterfactual click-if-examined draws: a single-output model has one label per output in TFMA).

One combiner collects each example's label, prediction and one feature of the raw example (:class:`_Collector`);
the metric's function runs once per slice at the end.
"""

from typing import Callable, Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.utils import util as tfma_util

from rec_models import metrics as rec_metrics

GAUC_NAME = 'gauc'
CSAUC_NAME = 'csauc'
COEC_NAME = 'coec'


class _Collector(beam.CombineFn):
    """Collects (feature, label, prediction) of every example of a slice; ``compute(features, labels, predictions)``
    gives the metric at the end (NaN for an empty slice)."""

    def __init__(self, key: metric_types.MetricKey, eval_config, feature_key: str,
                 compute: Callable[[np.ndarray, np.ndarray, np.ndarray], float]):
        self._key = key
        self._eval_config = eval_config
        self._feature_key = feature_key
        self._compute = compute

    def create_accumulator(self):
        return [[], [], []]

    def add_input(self, accumulator, element: metric_types.StandardMetricInputs):
        feature = np.asarray(tfma_util.get_by_keys(element.features, [self._feature_key])).reshape(-1)[0]
        for label, prediction, _ in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, flatten=True):
            accumulator[0].append(feature)
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
        features, labels, predictions = (np.asarray(column) for column in accumulator)
        if not labels.size:
            return {self._key: float('nan')}
        return {self._key: self._compute(features, labels, predictions)}


def _computations(name: str, feature_key: str, compute, eval_config=None, model_names: Optional[List[str]] = None,
                  output_names: Optional[List[str]] = None, example_weighted: bool = False
                  ) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or ['']:
        for output_name in output_names or ['']:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[feature_key])],
                combiner=_Collector(key, eval_config, feature_key, compute)))
    return computations


# TFMA passes a metric's computations function only the arguments its signature names: each spells them out.
def _gauc(name=GAUC_NAME, group_key='user_id', eval_config=None, model_names=None, output_names=None,
          example_weighted=False):
    return _computations(name, group_key, lambda groups, labels, scores: rec_metrics.gauc(labels, scores, groups),
                         eval_config, model_names, output_names, example_weighted)


def _csauc(name=CSAUC_NAME, bid_key='bid', eval_config=None, model_names=None, output_names=None,
           example_weighted=False):
    return _computations(name, bid_key, lambda bids, labels, scores: rec_metrics.csauc(labels, scores, bids),
                         eval_config, model_names, output_names, example_weighted)


def _coec(name=COEC_NAME, position_key='position', expected_ctr=None, eval_config=None, model_names=None,
          output_names=None, example_weighted=False):
    table = {int(position): float(ctr) for position, ctr in (expected_ctr or {}).items()}
    return _computations(name, position_key,
                         lambda positions, labels, _: rec_metrics.coec(labels, positions.astype(np.int64), table),
                         eval_config, model_names, output_names, example_weighted)


def _feature_label_auc(name='feature_label_auc', label_key='label', eval_config=None, model_names=None,
                       output_names=None, example_weighted=False):
    return _computations(name, label_key, lambda labels, _, scores: rec_metrics.auc(labels, scores), eval_config,
                         model_names, output_names, example_weighted)


class GAUC(metric_types.Metric):
    """Impression-weighted mean of per-group AUCs (groups with a single class skipped)."""

    def __init__(self, name: str = GAUC_NAME, group_key: str = 'user_id'):
        super().__init__(_gauc, name=name, group_key=group_key)


class CsAUC(metric_types.Metric):
    """The CPM-sensitive AUC of the predictions, with each example's bid read from ``bid_key``."""

    def __init__(self, name: str = CSAUC_NAME, bid_key: str = 'bid'):
        super().__init__(_csauc, name=name, bid_key=bid_key)


class COEC(metric_types.Metric):
    """The labels' clicks over expected clicks, ``expected_ctr`` the CTR of each position (the raw values of
    ``position_key``). It reads no prediction: a figure of the slice's data, beside the model's."""

    def __init__(self, name: str = COEC_NAME, position_key: str = 'position', expected_ctr=None):
        super().__init__(_coec, name=name, position_key=position_key, expected_ctr=expected_ctr)


class FeatureLabelAUC(metric_types.Metric):
    """The AUC of the predictions against the column ``label_key`` of the examples."""

    def __init__(self, name: str = 'feature_label_auc', label_key: str = 'label'):
        super().__init__(_feature_label_auc, name=name, label_key=label_key)


for _metric in (GAUC, CsAUC, COEC, FeatureLabelAUC):
    metric_types.register_metric(_metric)
