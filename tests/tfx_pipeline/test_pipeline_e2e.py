"""The whole pipeline on a small synthetic set, through the CLI, to pushed SavedModels served over gRPC and REST; a
model trained from CSV; and bad data stopped.

DIN and ESMM are the pipeline run's (``conftest.py``: a few models by name in one pipeline run).

* The summary reports the metrics against the Bayes ceiling; progress was visible while the run went.
* The pushed DIN, served by our TF-Serving-API server over gRPC and REST, answers the client with the Trainer's
  in-process scores; ``rank`` equals ``serving_default`` on the joined examples; GetModelMetadata lists the four
  signatures and their inputs; bad requests are answered INVALID_ARGUMENT, naming the feature.
* The pushed ESMM serves every head (``ctr``, ``cvr``, ``ctcvr``) over gRPC (the client's ``heads``, and
  GetModelMetadata's) and REST, with the Trainer's in-process values.
* The Evaluator's GAUC equals the GAUC of the pushed model's predictions computed here from its definition.
* A model trained from CSV serves the same typed tf.Examples (the TFRecord rows of the same data) with its
  Trainer's in-process scores, carries its warmup file, and ranks like ``serving_default``.
* A data file without the label column is rejected before any component runs, naming the column; a CSV with a
  string in a numeric column is stopped by ExampleValidator, naming the feature.
"""

import base64
import csv
import glob
import json
import os
import re
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf

from feature_spec import spec as spec_lib
from rec_models.metrics import gauc
from serving import model_manager, signatures
from serving.client import ServingClient, ServingError
from serving.examples import join_for_rank, split_for_rank
from serving.server import ModelServer, ServerOptions
from tfx_pipeline import export

from pipeline_cli import REPO, run_cli, sample_predictions, write_config

pytestmark = pytest.mark.pipeline


def test_summary_reports_metrics_against_the_bayes_ceiling(pipeline_run, tiny_data):
    summary = pipeline_run.summaries['din']
    with open(tiny_data / 'metadata.json') as f:
        bayes_auc = json.load(f)['bayes_auc']
    assert summary['bayes_auc'] == pytest.approx(bayes_auc, abs=1e-6)
    assert 0.55 < summary['test_auc'] <= bayes_auc + 0.03
    assert summary['fraction_of_ceiling'] == pytest.approx(
        (summary['test_auc'] - 0.5) / (bayes_auc - 0.5), abs=1e-4)
    assert 0 < summary['logloss'] < 0.6 and summary['blessed'] is True and summary['canary'] is True
    # Progress was visible while it ran: component start/end with their figures, and the Trainer's epochs.
    console = pipeline_run.result.stderr
    assert '] Transform …' in console
    assert re.search(r'Transform done in [0-9.]+ s: vocabularies item_id [0-9,]+', console)
    rows = re.search(r'StatisticsGen done in [0-9.]+ s: rows eval [0-9,]+, test ([0-9,]+), train [0-9,]+', console)
    assert rows and int(rows.group(1).replace(',', '')) == summary['example_count']  # the Evaluator's test rows
    assert 'Pusher.din done in' in console and f'pushed {summary["pushed_model"]}' in console
    assert re.search(r'Evaluator.din done in [0-9.]+ s: test_auc 0\.[0-9]{4}, blessed', console)
    assert re.search(r'Canary.din done in [0-9.]+ s: served in a new process .*serving_default [0-9]+ ms, rank',
                     console)
    assert re.search(r'epoch 1/2: [0-9,]+ examples in [0-9.]+ s \([0-9,]+ examples/s\): auc 0\.', console)


def test_served_over_grpc_and_rest_with_the_trainers_scores(pipeline_run):
    examples, expected = pipeline_run.sample('din')
    pushed = pipeline_run.pushed('din')
    assert os.path.exists(os.path.join(pushed, signatures.WARMUP_FILE))
    version = int(os.path.basename(pushed))
    config = model_manager.config_from_flags('din', os.path.dirname(pushed))
    spec = spec_lib.load(os.path.join(REPO, 'feature_spec', 'specs', 'synthetic.yaml'))
    with ModelServer(config, ServerOptions(port=0, rest_api_port=-1, host='localhost')) as server, \
            ServingClient(f'localhost:{server.grpc_port}', 'din', timeout_s=60) as client:
        served = client.predict(examples)
        assert served.version == version
        np.testing.assert_allclose(served.scores, expected, atol=1e-5, rtol=0)

        context, _ = split_for_rank(examples[0], spec)
        candidates = [split_for_rank(e, spec)[1] for e in examples[:50]]
        joined = [join_for_rank(context, candidate) for candidate in candidates]
        np.testing.assert_allclose(client.rank(context, candidates).scores, client.predict(joined).scores,
                                   atol=1e-5, rtol=0)
        np.testing.assert_allclose(client.classify(examples[:20]).scores[:, 1], expected[:20], atol=1e-5, rtol=0)

        defs = client.metadata().signature_defs
        assert set(defs) >= {signatures.PREDICT, signatures.RANK, signatures.CLASSIFY, signatures.REGRESS}
        assert set(defs[signatures.RANK].inputs) == {signatures.CONTEXT, signatures.CANDIDATES}
        assert set(defs[signatures.PREDICT].inputs) == {signatures.EXAMPLES}

        missing, wrong_type = (tf.train.Example.FromString(examples[0]) for _ in range(2))
        del missing.features.feature['age_bucket']  # a required scalar (a missing list is an empty one)
        wrong_type.features.feature['price'].Clear()
        wrong_type.features.feature['price'].bytes_list.value.append(b'cheap')
        for bad, named in ((b'\x0a\xff garbage', None), (missing, 'age_bucket'), (wrong_type, 'price')):
            with pytest.raises(ServingError) as error:
                client.predict([bad])
            assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT, error.value
            assert named is None or named in error.value.details
        np.testing.assert_allclose(client.predict(examples[:3]).scores, expected[:3], atol=1e-5, rtol=0)

        body = json.dumps({'instances': [{'b64': base64.b64encode(e).decode()} for e in examples[:5]]}).encode()
        url = f'http://localhost:{server.rest_port}/v1/models/din:predict'
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method='POST'), timeout=60) as response:
            predictions = json.load(response)['predictions']
        np.testing.assert_allclose(predictions, expected[:5], atol=1e-5, rtol=0)


def test_every_head_served_over_grpc_and_rest(pipeline_run, synthetic_spec):
    examples, expected = pipeline_run.sample('esmm', head=None)
    pushed = pipeline_run.pushed('esmm')
    config = model_manager.config_from_flags('esmm', os.path.dirname(pushed))
    with ModelServer(config, ServerOptions(port=0, rest_api_port=-1, host='localhost')) as server, \
            ServingClient(f'localhost:{server.grpc_port}', 'esmm', timeout_s=60) as client:
        served = client.predict(examples[:30])
        assert set(served.heads) == {'ctr', 'cvr', 'ctcvr'} == set(client.metadata().heads)
        np.testing.assert_allclose(served.scores, expected['probabilities'][:30], atol=1e-5, rtol=0)
        for head, values in served.heads.items():
            np.testing.assert_allclose(values, expected[head][:30], atol=1e-5, rtol=0, err_msg=head)
        context, _ = split_for_rank(examples[0], synthetic_spec)
        ranked = client.rank(context, [split_for_rank(e, synthetic_spec)[1] for e in examples[:10]])
        assert set(ranked.heads) == {'ctr', 'cvr', 'ctcvr'}
        np.testing.assert_allclose(ranked.heads['ctcvr'], ranked.heads['ctr'] * ranked.heads['cvr'], rtol=1e-5)
        body = json.dumps({'instances': [{'b64': base64.b64encode(e).decode()} for e in examples[:5]]}).encode()
        url = f'http://localhost:{server.rest_port}/v1/models/esmm:predict'
        with urllib.request.urlopen(urllib.request.Request(url, data=body, method='POST'), timeout=60) as response:
            predictions = json.load(response)['predictions']
        for name in ('probabilities', 'ctr', 'cvr', 'ctcvr'):
            np.testing.assert_allclose([row[name] for row in predictions], expected[name][:5], atol=1e-5, rtol=0)


def test_evaluator_gauc_matches_its_definition(pipeline_run, tiny_data):
    summary = pipeline_run.summaries['din']
    model = tf.saved_model.load(summary['pushed_model'])
    files = sorted(glob.glob(str(tiny_data / 'tfrecord' / 'test' / '*')))
    parsing = {'click': tf.io.FixedLenFeature([], tf.int64), 'user_id': tf.io.FixedLenFeature([], tf.int64)}
    labels, users, scores = [], [], []
    for batch in tf.data.TFRecordDataset(files).batch(1024):
        parsed = tf.io.parse_example(batch, parsing)
        labels.append(parsed['click'].numpy())
        users.append(parsed['user_id'].numpy())
        scores.append(model.signatures['serving_default'](examples=batch)['probabilities'].numpy())
    expected = gauc(np.concatenate(labels), np.concatenate(scores), np.concatenate(users))
    assert summary['gauc'] == pytest.approx(expected, abs=1e-5)


def test_missing_label_column_is_rejected_before_any_component(tiny_data, tmp_path):
    bad = tmp_path / 'no_label'
    for split in ('train', 'eval', 'test'):
        os.makedirs(bad / 'tfrecord' / split)
        for path in glob.glob(str(tiny_data / 'tfrecord' / split / '*')):
            with tf.io.TFRecordWriter(str(bad / 'tfrecord' / split / os.path.basename(path))) as writer:
                for record in tf.data.TFRecordDataset(path):
                    example = tf.train.Example.FromString(record.numpy())
                    if split == 'test':
                        del example.features.feature['click']
                    writer.write(example.SerializeToString())
    result = run_cli('run', '--config', write_config(tmp_path, bad, 'no_label'))
    assert result.returncode == 2
    assert "column 'click' is missing from the data" in result.stderr
    assert 'test' in result.stderr and 'Component' not in result.stderr


def test_string_in_numeric_column_is_stopped_by_example_validator(tiny_data, tmp_path):
    bad = tmp_path / 'bad_csv'
    for split in ('train', 'eval', 'test'):
        os.makedirs(bad / 'csv' / split)
        for path in glob.glob(str(tiny_data / 'csv' / split / '*')):
            with open(path, newline='') as source:
                rows = list(csv.reader(source))
            if split == 'train':
                rows[len(rows) // 2][rows[0].index('price')] = 'expensive'  # not the first row
            with open(bad / 'csv' / split / os.path.basename(path), 'w', newline='') as target:
                csv.writer(target).writerows(rows)
    result = run_cli('run', '--config', write_config(tmp_path, bad, 'bad_csv', data_format='csv'))
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'the data does not match the feature spec' in result.stderr
    assert 'train/price:' in result.stderr
    assert '] Transform …' not in result.stderr and 'AnomaliesGate …' in result.stderr


def _impression_id(serialized: bytes) -> int:
    return tf.train.Example.FromString(serialized).features.feature['impression_id'].int64_list.value[0]


def test_model_trained_from_csv_serves_typed_examples(tiny_data, tmp_path):
    result = run_cli('run', '--config', write_config(tmp_path, tiny_data, 'from_csv', data_format='csv', epochs=1))
    assert result.returncode == 0, result.stderr[-5000:]
    # A short console: a line per component start and end, one per epoch, the log's path, the summary; no warnings.
    console = result.stderr.splitlines()
    assert len(console) + len(result.stdout.splitlines()) < 30, result.stderr
    assert all(re.match(r'^(\[ *[0-9:]+\] |        epoch )', line) for line in console), result.stderr
    assert not re.search(r'warn|error|traceback', result.stderr, re.IGNORECASE)
    pushed = json.loads(result.stdout.strip().splitlines()[-1])['pushed_model']
    assert os.path.exists(os.path.join(pushed, signatures.WARMUP_FILE))
    _, expected = sample_predictions(tmp_path / 'runs' / 'from_csv')
    files = sorted(glob.glob(str(tiny_data / 'tfrecord' / 'test' / '*')))
    typed = [r.numpy() for r in tf.data.TFRecordDataset(files).take(len(expected))]  # the same rows as the CSV's
    model = tf.saved_model.load(pushed)
    scores = model.signatures['serving_default'](examples=tf.constant(typed))['probabilities'].numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)
    logged = [r.numpy() for r in tf.data.TFRecordDataset(glob.glob(  # what CsvExampleGen wrote: lists as strings
        str(tmp_path / 'runs' / 'from_csv' / 'pipeline' / 'CsvExampleGen' / 'examples' / '*' / 'Split-test' / '*')),
        compression_type='GZIP').take(5)]
    by_id = {_impression_id(r): r for r in tf.data.TFRecordDataset(files).as_numpy_iterator()}
    same_rows_typed = [by_id[_impression_id(r)] for r in logged]
    evaluated = model.signatures[export.EVALUATE_LOGGED](examples=tf.constant(logged))['probabilities'].numpy()
    served = model.signatures['serving_default'](examples=tf.constant(same_rows_typed))['probabilities'].numpy()
    np.testing.assert_allclose(evaluated, served, atol=1e-5, rtol=0)

    spec = spec_lib.load(os.path.join(REPO, 'feature_spec', 'specs', 'synthetic.yaml'))
    context, _ = split_for_rank(typed[30], spec)
    candidates = [split_for_rank(e, spec)[1] for e in typed[:20]]
    joined = [join_for_rank(context, candidate).SerializeToString() for candidate in candidates]
    ranked = model.signatures['rank'](context=tf.constant(context.SerializeToString()),
                                      candidates=tf.constant([c.SerializeToString() for c in candidates]))
    served = model.signatures['serving_default'](examples=tf.constant(joined))
    np.testing.assert_allclose(ranked['probabilities'].numpy(), served['probabilities'].numpy(), atol=1e-5, rtol=0)
