"""Config loading: overrides apply, and every bad value fails before any work with the key named."""

import os

import pytest

from tfx_pipeline import config as config_lib


def test_demo_config_and_overrides():
    config = config_lib.load('tfx_pipeline/configs/demo.yaml', ['training.model=deepfm', 'training.epochs=2',
                                                                'training.hparams={dropout: 0.1}'])
    assert config.training.model == 'deepfm' and config.training.epochs == 2
    assert dict(config.training.hparams) == {'dropout': 0.1}
    assert config.serving_dir('deepfm').endswith('runs/demo/serving/deepfm')
    assert config.training.models == ('deepfm',) and config.node_id('Trainer', 'deepfm') == 'Trainer'
    assert config_lib.TrainingConfig.from_dict(config.training.to_dict()) == config.training


def test_several_models_get_their_own_nodes_and_the_same_schedule():
    config = config_lib.load('tfx_pipeline/configs/demo.yaml', ['training.model=[lr, fm]', 'training.epochs=3'])
    assert config.training.models == ('lr', 'fm')
    assert [config.node_id('Trainer', m) for m in config.training.models] == ['Trainer.lr', 'Trainer.fm']
    single = config.training.for_model('fm')
    assert single.model == 'fm' and single.epochs == 3 and single.models == ('fm',)
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
    ('training.model=[]', 'training.model must be a name or a non-empty list of names'),
    ('training.model=3', 'training.model must be a name or a non-empty list of names'),
    ('training.model=[fm, fm]', 'training.model lists a name twice'),
    ('evaluation.head_floors=0.6', 'evaluation.head_floors must map head names to AUC floors'),
    ('evaluation.head_floors={cvr: 1.5}', 'evaluation.head_floors must map head names to AUC floors'),
    ('training.early_stopping_metric=3', 'training.early_stopping_metric must be a string'),
])
def test_bad_values_are_rejected_naming_the_key(override, message):
    with pytest.raises(config_lib.ConfigError) as error:
        config_lib.load('tfx_pipeline/configs/demo.yaml', [override])
    assert message in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(config_lib.ConfigError, match='config file not found'):
        config_lib.load(str(tmp_path / 'nope.yaml'))


def test_head_floors_must_name_a_head_of_a_model_of_the_run(tiny_data, tmp_path):
    from tfx_pipeline import validation  # pylint: disable=import-outside-toplevel
    overrides = [f'data.path={tiny_data}', f'runs_dir={tmp_path}']
    config = config_lib.load('tfx_pipeline/configs/demo.yaml', overrides + ['training.model=[din, esmm]',
                                                                           'evaluation.head_floors={cvr: 0.6}'])
    validation.validate(config)   # ESMM serves cvr
    config = config_lib.load('tfx_pipeline/configs/demo.yaml', overrides + ['evaluation.head_floors={cvr: 0.6}'])
    with pytest.raises(config_lib.ConfigError, match=r"head_floors: no model of the run serves \['cvr'\]"):
        validation.validate(config)


def test_early_stopping_watches_the_primary_head_or_a_named_metric():
    from rec_models import registry  # pylint: disable=import-outside-toplevel
    from tfx_pipeline import trainer  # pylint: disable=import-outside-toplevel
    from toy_inputs import INPUTS  # pylint: disable=import-outside-toplevel
    esmm = registry.build('esmm', INPUTS)
    training = config_lib.TrainingConfig(model='esmm')
    assert trainer.early_stopping_metric(esmm, training) == 'ctr_auc'
    assert trainer.early_stopping_metric(esmm, config_lib.TrainingConfig(early_stopping_metric='cvr_auc')) == 'cvr_auc'
    with pytest.raises(ValueError, match="training.early_stopping_metric: .*no metric 'val_auc'"):
        trainer.early_stopping_metric(esmm, config_lib.TrainingConfig(early_stopping_metric='val_auc'))


def test_item_feed_is_the_configured_one_or_the_generators():
    assert config_lib.from_dict({'data': {'item_feed': 'items/*.csv'}}).data.item_feed_pattern() == ('items/*.csv',
                                                                                                        True)
    generated = config_lib.from_dict({'data': {'path': 'd', 'synthetic': {'preset': 'tiny'}}}).data
    assert generated.item_feed_pattern() == (os.path.join('d', 'tfrecord', 'items', '*'), False)
    assert config_lib.from_dict({'data': {'path': 'd'}}).data.item_feed_pattern() == (None, False)


def test_a_mistyped_data_path_is_not_filled_with_synthetic_data_the_spec_cannot_read(tmp_path, capfd):
    from tfx_pipeline import __main__ as cli  # pylint: disable=import-outside-toplevel
    spec = tmp_path / 'mine.yaml'   # the user's own spec: a column the generator does not write
    with open('feature_spec/specs/synthetic.yaml') as f:
        spec.write_text(f.read().replace('price_bucket: {source: price,', 'price_bucket: {source: shelf_price,'))
    typo = tmp_path / 'mydata_typo'
    code = cli.main(['run', '--config', 'tfx_pipeline/configs/demo.yaml', '--set', f'data.path={typo}',
                     '--set', f'feature_spec={spec}', '--set', 'data.synthetic={preset: tiny}',
                     '--set', f'runs_dir={tmp_path / "runs"}'])
    assert code == 2
    error = capfd.readouterr().err   # the console writes to the terminal's file descriptor
    assert 'check data.path' in error and 'shelf_price' in error and str(typo) in error
    assert not typo.exists()


def test_exponent_numbers_are_numbers_in_overrides_files_and_hparams(tmp_path):
    """YAML 1.1 reads 1e-4 (no dot) as a string; the config reads it as the number a user means."""
    path = tmp_path / 'c.yaml'
    path.write_text('training: {learning_rate: 3e-4, hparams: {l2: 1E-3}}\n')
    config = config_lib.load(str(path), ['training.hparams.dropout=1e-1', 'evaluation.auc_floor=5e-1'])
    assert config.training.learning_rate == 3e-4 and config.evaluation.auc_floor == 0.5
    assert dict(config.training.hparams) == {'l2': 1e-3, 'dropout': 0.1}
    assert config_lib.load(None, ['name=1e3x']).name == '1e3x'
