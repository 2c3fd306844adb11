"""Config loading: overrides apply, and every bad value fails before any work with the key named."""

import pytest

from tfx_pipeline import config as config_lib


def test_demo_config_and_overrides():
    config = config_lib.load('tfx_pipeline/configs/demo.yaml', ['training.model=deepfm', 'training.epochs=2',
                                                                'training.hparams={dropout: 0.1}'])
    assert config.training.model == 'deepfm' and config.training.epochs == 2
    assert dict(config.training.hparams) == {'dropout': 0.1}
    assert config.serving_dir.endswith('runs/demo/serving/deepfm')
    assert config_lib.TrainingConfig.from_dict(config.training.to_dict()) == config.training


@pytest.mark.parametrize('override, message', [
    ('training.batchsize=3', "unknown key 'training.batchsize'"),
    ('training.epochs=three', 'training.epochs must be an integer'),
    ('training.epochs=0', 'training.epochs must be positive'),
    ('training.learning_rate=2', 'training.learning_rate must be in (0, 1)'),
    ('training.learning_rate_decay=0', 'training.learning_rate_decay must be in (0, 1]'),
    ('runner.kind=spark', "runner.kind 'spark' is not one of local, beam"),
    ('data.format=parquet', "data.format 'parquet'"),
    ('evaluation.auc_floor=yes', 'evaluation.auc_floor must be a number'),
    ('runner.beam_args=--x', 'runner.beam_args must be a list of strings'),
    ('runner.enable_cache=maybe', 'runner.enable_cache must be true or false'),
    ('colour=red', "unknown key 'colour'"),
    ('training', 'not of the form section.key=value'),
])
def test_bad_values_are_rejected_naming_the_key(override, message):
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load('tfx_pipeline/configs/demo.yaml', [override])
    assert message in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(config_lib.ConfigError, match='config file not found'):
        config_lib.load(str(tmp_path / 'nope.yaml'))
