"""TensorBoard logs (tfx_pipeline/board.py), read back from the event files: per-epoch scalars with the loss terms and
the learning rate, histograms of the embedding tables and the predictions, the PR curve, a labelled embedding
projector, attention images, the hparams session; and the run's directories as ``python -m tfx_pipeline
tensorboard`` lists them."""

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.projector import projector_config_pb2
from google.protobuf import text_format

from feature_spec import resolve
from tfx_pipeline import board, export, trainer
from tfx_pipeline.config import TrainingConfig


def events(log_dir):
    """``{tag: (plugin name, [(step, numpy value)])}`` of one TensorBoard run directory."""
    accumulator = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return {tag: (accumulator.SummaryMetadata(tag).plugin_data.plugin_name,
                  [(e.step, tf.make_ndarray(e.tensor_proto)) for e in accumulator.Tensors(tag)])
            for tag in accumulator.Tags()['tensors']}


def image(value):
    """The PIL image of an image summary's value ``[width, height, png]``."""
    return Image.open(io.BytesIO(value[2]))


def test_pr_counts_follow_the_threshold_rule():
    labels = np.array([True, False, True, False, True])
    predictions = np.array([0.9, 0.8, 0.4, 0.1, 0.0])
    tp, fp, tn, fn, precision, recall = board.pr_counts(labels, predictions, 11)
    # threshold 0.5 (index 5): predicted positive 0.9, 0.8 → one TP, one FP
    assert (tp[5], fp[5], tn[5], fn[5]) == (1, 1, 1, 2)
    assert precision[5] == 0.5 and recall[5] == pytest.approx(1 / 3)
    assert (tp[0], fp[0]) == (3, 2) and recall[0] == 1.0   # threshold 0: everything is positive
    assert np.all(np.diff(tp) <= 0) and np.all(np.diff(fp) <= 0)


@pytest.mark.parametrize('shape', [(16, 50), (16, 2, 4), (16, 2, 5, 5)])
def test_heat_maps_are_drawn_for_every_attention_shape(shape):
    values = np.random.default_rng(0).random(shape).astype(np.float32)
    labels = [f'f{i}' for i in range(5)] if len(shape) == 4 else None
    picture = Image.open(io.BytesIO(board.heat_map_png('attention_maps', values, labels, 'users')))
    pixels = np.asarray(picture.convert('L'), np.float32)
    panels = shape[1] if len(shape) == 4 else 1
    assert picture.width > 300 * panels and pixels.std() > 10   # one panel per head, not blank


def test_only_attention_like_outputs_are_drawn():
    outputs = {'logits': tf.zeros([4]), 'probabilities': tf.zeros([4]), 'attention_weights': tf.zeros([4, 7]),
               'gates': tf.zeros([4, 2, 3]), 'attention_maps': tf.zeros([4, 2, 5, 5]), 'gate_entropy': tf.zeros([]),
               'clicked_weights': tf.zeros([4, 3]), 'ids_weights': tf.zeros([4, 3], tf.int64)}
    assert sorted(board.attention_outputs(outputs)) == ['attention_maps', 'attention_weights', 'clicked_weights',
                                                        'gates']


@pytest.fixture(name='din_logs', scope='module')
def fixture_din_logs(prepared_tiny, tmp_path_factory):
    """DIN trained two epochs with the Trainer's TensorBoard logs, and the after-training logs on logged test
    examples."""
    prepared = prepared_tiny
    log_dir = str(tmp_path_factory.mktemp('board') / 'din')
    config = TrainingConfig(model='din', epochs=2, batch_size=128, seed=0, learning_rate=0.004,
                            learning_rate_decay=0.5, early_stopping_patience=5)
    model, _ = trainer.train(prepared.spec, prepared.tft_output, [prepared.transformed['train']],
                             [prepared.transformed['eval']], config, log_dir=log_dir)
    examples = export.read_examples(prepared.raw['test'], 64, prepared.spec, 'tfrecord')
    board.write_after_training(model, prepared.spec, prepared.tft_output, log_dir, config,
                               [prepared.transformed['eval']], examples, 'tfrecord')
    return log_dir, model


@pytest.mark.pipeline
def test_epoch_scalars_hold_the_loss_terms_and_the_learning_rate(din_logs):
    log_dir, _ = din_logs
    train, validation = events(os.path.join(log_dir, 'train')), events(os.path.join(log_dir, 'validation'))
    for run, tags in ((train, ('epoch_loss', 'epoch_auc', 'epoch_regularization_loss')),
                      (validation, ('epoch_loss', 'epoch_auc'))):   # the L2 is a training-time term
        for tag in tags:
            plugin, values = run[tag]
            assert plugin == 'scalars' and [step for step, _ in values] == [0, 1], tag
    rates = [float(value) for _, value in train['epoch_learning_rate'][1]]
    assert rates == pytest.approx([0.004, 0.002])   # the decay's schedule, epoch by epoch
    loss = float(train['epoch_loss'][1][-1][1])
    assert 0 < float(train['epoch_regularization_loss'][1][-1][1]) < loss


@pytest.mark.pipeline
def test_histograms_of_every_embedding_table_and_of_the_predictions_by_label(din_logs):
    log_dir, model = din_logs
    train = events(os.path.join(log_dir, 'train'))
    tables = {path.split('/')[-2] for path in board.embedding_tables(model)}
    histograms = {tag for tag, (plugin, _) in train.items() if plugin == 'histograms'}
    assert {f'embeddings/embedding/{table}/embeddings' for table in tables} <= histograms
    assert {'item_id', 'category', 'brand'} <= tables
    positives = train['predictions/probabilities/positives'][1][-1][1]   # [buckets, 3]: left, right, count
    negatives = train['predictions/probabilities/negatives'][1][-1][1]
    mean = lambda h: float(((h[:, 0] + h[:, 1]) / 2 * h[:, 2]).sum() / h[:, 2].sum())  # noqa: E731
    assert positives[:, 2].sum() > 0 and mean(positives) > mean(negatives)   # a trained DIN ranks clicks higher


@pytest.mark.pipeline
def test_the_pr_curve_of_the_primary_head(din_logs, prepared_tiny):
    log_dir, _ = din_logs
    plugin, values = events(os.path.join(log_dir, 'validation'))['pr_curve/probabilities/pr_curves']
    assert plugin == 'pr_curves'
    counts = values[0][1]   # [6, thresholds]: TP, FP, TN, FN, precision, recall
    assert counts.shape == (6, board.PR_THRESHOLDS)
    eval_rows = prepared_tiny.metadata['splits']['eval']['rows']
    assert counts[0, 0] + counts[1, 0] == min(board.SAMPLE_ROWS, eval_rows)   # every sampled row at threshold 0
    assert np.all(counts[0] + counts[3] == counts[0, 0])   # TP + FN = the positives at every threshold
    assert counts[5, 0] == 1.0 and counts[4, 0] < counts[4, board.PR_THRESHOLDS // 10]


@pytest.mark.pipeline
def test_the_projector_labels_each_table_with_transforms_vocabulary_and_frequencies(din_logs, prepared_tiny):
    log_dir, model = din_logs
    directory = os.path.join(log_dir, board.PROJECTOR)
    config = text_format.Parse(open(os.path.join(directory, 'projector_config.pbtxt')).read(),
                               projector_config_pb2.ProjectorConfig())
    assert not config.model_checkpoint_path   # found through the directory's checkpoint file, wherever it is
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(directory))
    embeddings = {e.tensor_name.split('/')[0]: e for e in config.embeddings}
    assert {'item_id', 'category', 'brand'} <= set(embeddings)
    frequencies = resolve.table_frequencies(prepared_tiny.spec, prepared_tiny.tft_output)
    for table in ('item_id', 'category', 'brand'):
        values = reader.get_tensor(embeddings[table].tensor_name)
        [trained] = [v for path, v in board.embedding_tables(model).items() if path.split('/')[-2] == table]
        np.testing.assert_array_equal(values, trained.numpy())
        with open(os.path.join(directory, embeddings[table].metadata_path), encoding='utf-8') as f:
            rows = [line.rstrip('\n').split('\t') for line in f]
        assert rows[0] == ['label', 'frequency'] and len(rows) - 1 == values.shape[0]   # the plugin's own check
        tokens = resolve.vocabulary_tokens(prepared_tiny.tft_output.vocabulary_file_by_name(table))
        assert [label for label, _ in rows[2:2 + len(tokens)]] == tokens
        assert [int(count) for _, count in rows[2:2 + len(tokens)]] == list(frequencies[table][1:len(tokens) + 1])
        assert rows[1][0] == '<padding>' and rows[-1][0].startswith('<oov')
    assert 'tables' in events(directory)   # an event file: TensorBoard lists the directory as a run


@pytest.mark.pipeline
def test_dins_attention_over_the_history_is_an_image_of_test_users_by_step(din_logs):
    log_dir, _ = din_logs
    plugin, values = events(os.path.join(log_dir, board.ATTENTION))['attention/attention_weights']
    assert plugin == 'images'
    picture = image(values[0][1])
    assert picture.width > 200 and np.asarray(picture.convert('L'), np.float32).std() > 10


@pytest.mark.pipeline
def test_the_hparams_session_names_the_model_and_its_hyper_parameters(din_logs):
    log_dir, _ = din_logs
    accumulator = event_accumulator.EventAccumulator(log_dir)
    accumulator.Reload()
    metadata = accumulator.SummaryMetadata('_hparams_/session_start_info')
    assert metadata.plugin_data.plugin_name == 'hparams'
    hparams = plugin_data_pb2.HParamsPluginData.FromString(metadata.plugin_data.content).session_start_info.hparams
    assert hparams['model'].string_value == 'din' and hparams['learning_rate'].number_value == pytest.approx(0.004)
    assert hparams['pooling'].string_value == 'attention' and hparams['attention_units'].string_value == '(80, 40)'


@pytest.mark.pipeline
def test_tensorboard_itself_serves_the_labelled_projector_and_the_attention_image(din_logs):
    """What a person sees: a TensorBoard server on the logs, asked through its plugins' HTTP routes."""
    log_dir, model = din_logs
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, '-m', 'tensorboard.main', '--logdir', log_dir, '--host', '127.0.0.1',
                               '--port', str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f'http://127.0.0.1:{port}/data/plugin'

    def get(path):
        with urllib.request.urlopen(base + path, timeout=30) as response:
            return response.read()

    try:
        deadline, runs = time.monotonic() + 120, []
        while board.PROJECTOR not in runs and time.monotonic() < deadline and server.poll() is None:
            try:
                runs = json.loads(get('/projector/runs'))
            except OSError:
                time.sleep(1)
        assert board.PROJECTOR in runs, server.stderr.read().decode()[-2000:] if server.poll() is not None else runs
        config = json.loads(get(f'/projector/info?run={board.PROJECTOR}'))
        item = next(e for e in config['embeddings'] if e['tensorName'].startswith('item_id/'))
        [table] = [v for path, v in board.embedding_tables(model).items() if path.split('/')[-2] == 'item_id']
        assert [int(d) for d in item['tensorShape']] == list(table.shape)
        name = urllib.parse.quote(item['tensorName'])
        values = np.frombuffer(get(f'/projector/tensor?run={board.PROJECTOR}&name={name}'), np.float32)
        np.testing.assert_array_equal(values.reshape(table.shape), table.numpy())
        metadata = get(f'/projector/metadata?run={board.PROJECTOR}&name={name}').decode().splitlines()
        assert metadata[0] == 'label\tfrequency' and len(metadata) == table.shape[0] + 1
        tags = json.loads(get('/images/tags'))
        assert 'attention/attention_weights' in tags[board.ATTENTION]
    finally:
        server.kill()
        server.wait(timeout=30)


@pytest.mark.pipeline
@pytest.mark.parametrize('name,key,panels', [('autoint', 'attention_maps', 2), ('bst', 'attention_maps', None),
                                             ('mmoe', 'gates', 1)])
def test_attention_images_of_other_models(prepared_tiny, tmp_path, name, key, panels):
    prepared = prepared_tiny
    model = trainer.build_model(prepared.spec, prepared.tft_output, TrainingConfig(model=name))
    features, _ = board.take_rows(trainer.input_fn([prepared.transformed['test']], prepared.tft_output,
                                                   prepared.spec.labels, 8), 8)
    tags = board.write_attention(model, features, str(tmp_path), 'test rows')
    assert f'attention/{key}' in tags
    picture = image(events(str(tmp_path))[f'attention/{key}'][1][0][1])
    heads = model.hparams.get('heads', 1) if panels is None else panels
    assert picture.width >= 300 * heads


def test_tensorboard_names_a_directory_that_is_no_run(tmp_path, capsys):
    from tfx_pipeline import __main__ as cli  # pylint: disable=import-outside-toplevel
    assert cli.main(['tensorboard', str(tmp_path)]) == 2
    assert 'no metadata.sqlite' in capsys.readouterr().err


@pytest.mark.pipeline
def test_a_pipeline_run_lists_every_models_logs_and_the_evaluators_slices(pipeline_run, capsys):
    from tfx_pipeline import __main__ as cli  # pylint: disable=import-outside-toplevel
    from zoo_run import PIPELINE_MODELS  # pylint: disable=import-outside-toplevel
    assert cli.main(['tensorboard', str(pipeline_run.run_dir)]) == 0
    command, *lines = capsys.readouterr().out.strip().splitlines()
    dirs = dict(line.split('  ', 1) for line in lines)
    assert command.startswith('tensorboard --logdir_spec ') and all(path in command for path in dirs.values())
    assert set(dirs) == {*PIPELINE_MODELS, *(f'{model}-evaluator' for model in PIPELINE_MODELS)}
    # the Trainer's run_fn wrote them: the hparams session, the projector, and for ranking models the predictions
    for model in PIPELINE_MODELS:
        accumulator = event_accumulator.EventAccumulator(dirs[model])
        accumulator.Reload()
        hparams = plugin_data_pb2.HParamsPluginData.FromString(accumulator.SummaryMetadata(
            '_hparams_/session_start_info').plugin_data.content).session_start_info.hparams
        assert hparams['model'].string_value == model
        assert os.path.isfile(os.path.join(dirs[model], board.PROJECTOR, 'item_id.tsv')), model
    train = events(os.path.join(dirs['esmm'], 'train'))
    assert {'predictions/ctr', 'predictions/cvr', 'predictions/ctcvr/positives'} <= set(train)
    assert 'attention/attention_weights' in events(os.path.join(dirs['din'], board.ATTENTION))
    # the Evaluator's slices: the overall AUC is the summary's, and every position has its own
    scalars = events(dirs['din-evaluator'])
    [(step, overall)] = scalars['auc/overall'][1]
    assert float(overall) == pytest.approx(pipeline_run.summaries['din']['test_auc'], abs=1e-6) and step > 0
    assert len([tag for tag in scalars if tag.startswith('auc/position=')]) >= 3
    [(_, recall)] = events(dirs['two_tower-evaluator'])['recall_at_50/overall'][1]
    assert float(recall) == pytest.approx(pipeline_run.summaries['two_tower']['recall_at_50'], abs=2e-6)
