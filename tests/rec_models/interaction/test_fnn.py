"""FNN's warm start: z is restored from an FM this project exported, and a mismatched or absent FM is refused."""

import numpy as np
import pytest
import tensorflow as tf

from feature_spec import schema as schema_lib
from rec_models import registry
from rec_models.interaction.fnn import zero_features
from tfx_pipeline import export, trainer
from tfx_pipeline.config import TrainingConfig

pytestmark = pytest.mark.pipeline   # the tiny set's Transform


@pytest.fixture(name='fm_export', scope='module')
def fixture_fm_export(prepared_tiny, tmp_path_factory):
    """An FM with random weights (so that a restore is visible), exported as the Trainer exports it."""
    fm = trainer.build_model(prepared_tiny.spec, prepared_tiny.tft_output, TrainingConfig(model='fm'))
    examples = export.read_examples(prepared_tiny.raw['test'], 8)
    export.predict_in_process(fm, prepared_tiny.tft_output, prepared_tiny.spec, schema_lib.TFRECORD, examples)
    rng = np.random.default_rng(3)
    for variable in fm.fields.trainable_variables:
        variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))
    export_dir = str(tmp_path_factory.mktemp('fm'))
    export.export_serving_model(fm, prepared_tiny.tft_output, prepared_tiny.spec, schema_lib.TFRECORD, export_dir)
    return fm, export_dir


def _by_path(variables):
    """{path below the fields layer: value}: the model's own name scope differs between FM and FNN."""
    return {v.name[v.name.index('fields/'):]: v.numpy() for v in variables}


def _fnn(prepared, **hparams):
    return trainer.build_model(prepared.spec, prepared.tft_output, TrainingConfig(model='fnn', hparams=hparams))


def test_fields_start_as_the_fms(prepared_tiny, fm_export):
    fm, export_dir = fm_export
    fnn = _fnn(prepared_tiny, fm_model=export_dir)
    fm_weights = _by_path(fm.fields.weights)
    fnn_weights = _by_path(fnn.fields.weights)
    assert set(fnn_weights) == set(fm_weights) and len(fm_weights) >= 3
    for name, value in fm_weights.items():
        np.testing.assert_array_equal(fnn_weights[name], value, err_msg=name)
    cold = _fnn(prepared_tiny)
    cold(zero_features(cold.model_inputs))
    assert any(not np.allclose(value, fm_weights[name]) for name, value in _by_path(cold.fields.weights).items())


def test_a_missing_or_mismatched_fm_is_refused_before_training(prepared_tiny, fm_export, tmp_path):
    _, export_dir = fm_export
    with pytest.raises(ValueError, match='fm_model.*not an exported model'):
        registry.validate('fnn', {'fm_model': str(tmp_path)})
    with pytest.raises(ValueError, match='fm_model.*do not fit this FNN'):
        _fnn(prepared_tiny, fm_model=export_dir, embedding_dim=4)
    with pytest.raises(ValueError, match='fm_model.*do not fit this FNN'):
        _fnn(prepared_tiny, fm_model=export_dir, use_behavior='learned')
    other = trainer.build_model(prepared_tiny.spec, prepared_tiny.tft_output, TrainingConfig(model='lr'))
    examples = export.read_examples(prepared_tiny.raw['test'], 4)
    export.predict_in_process(other, prepared_tiny.tft_output, prepared_tiny.spec, schema_lib.TFRECORD, examples)
    lr_dir = str(tmp_path / 'lr')
    export.export_serving_model(other, prepared_tiny.tft_output, prepared_tiny.spec, schema_lib.TFRECORD, lr_dir)
    with pytest.raises(ValueError, match='fm_model.*do not fit this FNN'):
        _fnn(prepared_tiny, fm_model=lr_dir)
    assert tf.io.gfile.exists(lr_dir)
