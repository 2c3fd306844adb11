"""Negative down-sampling: a model trained on data whose negatives were kept at rate w serves probabilities
calibrated back to the unsampled data, q = p / (p + (1 − p) / w)."""

import dataclasses

import numpy as np
import pytest

from feature_spec import spec as spec_lib
from rec_models import registry
from rec_models.metrics import calibrate_negative_sampling
from tfx_pipeline import data, experiment, export
from tfx_pipeline.config import TrainingConfig


def test_the_seeds_worked_example():
    # Ads A, B, C with positive rates .3/.2/.2, negatives kept at w = 1/3: the sampled rates are .5625/.4286/.4286
    # and the calibration gives the true rates back (the seed's negative-sampling note).
    sampled = np.array([0.3 / (0.3 + 0.7 / 3), 0.2 / (0.2 + 0.8 / 3), 0.2 / (0.2 + 0.8 / 3)])
    np.testing.assert_allclose(sampled, [0.5625, 0.4286, 0.4286], atol=1e-4)
    np.testing.assert_allclose(calibrate_negative_sampling(sampled, 1 / 3), [0.3, 0.2, 0.2], rtol=1e-9)
    cpc = np.array([6, 8, 3])
    assert np.argmax(sampled * cpc) == 1 and np.argmax(calibrate_negative_sampling(sampled, 1 / 3) * cpc) == 0


def test_negative_sampling_calibrates_the_primary_head_only():
    class Model:   # what :func:`export.served` reads of a model: its heads and outputs
        hparams = {}
        served_heads = staticmethod(lambda hparams: registry.get('esmm')[0].HEADS)
    p = np.array([0.1, 0.5, 0.8], np.float32)
    outputs = {'probabilities': p, 'ctr': p, 'cvr': p, 'ctcvr': p}
    served = export.served(Model(), outputs, negative_sampling_rate=1 / 3)
    q = p / (p + (1 - p) * 3)
    for name in ('probabilities', 'ctr'):
        np.testing.assert_allclose(served[name], q, rtol=1e-6)
    np.testing.assert_allclose(served['cvr'], p)
    assert spec_lib.parse({'columns': {'click': {'kind': 'label'}},
                           'negative_sampling_rate': 0.25}).negative_sampling_rate == 0.25
    with pytest.raises(spec_lib.SpecError, match='negative_sampling_rate'):
        spec_lib.parse({'columns': {'click': {'kind': 'label'}}, 'negative_sampling_rate': 0})


@pytest.mark.slow
def test_a_model_trained_on_down_sampled_negatives_serves_calibrated_probabilities(tmp_path):
    rate = 0.2
    spec_path = tmp_path / 'spec.yaml'
    spec_path.write_text(open(experiment.DEFAULT_SPEC).read() + f'\nnegative_sampling_rate: {rate}\n')
    generator = dataclasses.replace(data.PRESETS['small'], negative_sampling_rate=rate)
    prepared = experiment.prepare(generator, str(tmp_path / 'work'), spec_path=str(spec_path))
    train = prepared.metadata['splits']['train']
    assert train['ctr'] > 2.5 * prepared.metadata['splits']['test']['ctr']   # the negatives were sampled
    figures = experiment.fit_and_score(prepared, TrainingConfig(model='base_model', epochs=2, batch_size=256,
                                                                learning_rate=0.002, early_stopping_patience=0),
                                       extra=lambda model: {'calibration': _calibration(model, prepared)})
    assert abs(figures['calibration'] - 1) < 0.05, figures


def _calibration(model, prepared):
    """Mean served probability over the mean true CTR of the raw test split (no label noise)."""
    serving = export.ServingModel(model, prepared.tft_output, prepared.spec, 'tfrecord')
    served = experiment.predict_raw(serving, prepared.raw['test'])['probabilities']
    truth = experiment._test_columns(  # pylint: disable=protected-access
        dataclasses.replace(prepared.spec, label_roles={'truth': 'true_ctr'}), prepared.raw['test'])['true_ctr']
    return float(served.mean() / truth.mean())
