"""A retrieval model through the whole pipeline (``two_tower`` in the shared pipeline run, beside DIN), served.

* The retrieval Evaluator reported full-ranking metrics on the test clicks (ordered by K, sampled protocols above
  full ranking), blessed the model and the Pusher pushed it in TF Serving's layout.
* The pushed SavedModel, loaded in a fresh process that never imports this project, retrieves the Trainer's
  in-process top k (ids and scores, 1e-5) from the index it holds.
* ``retrieve_excluding`` leaves the excluded ids out; ``k`` is clipped; a user without history gets the recent
  popularity list; the embed signatures' shapes.
* Retrieve → rank over gRPC: one server hosts the retrieval model and DIN; ``ServingClient.recommend`` and
  ``python -m serving.client recommend`` return the top k of the retrieved candidates by DIN's ``rank`` scores,
  which equal DIN's ``serving_default`` on the joined examples.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from feature_spec import spec as spec_lib
from serving import model_manager, signatures
from serving.client import ServingClient
from serving.examples import join_for_rank, split_for_rank
from serving.server import ModelServer, ServerOptions

from fresh_process import retrieve_in_fresh_process
from pipeline_cli import REPO, sample_retrievals

pytestmark = pytest.mark.pipeline
MODEL = 'two_tower'
SPEC = os.path.join(REPO, 'feature_spec', 'specs', 'synthetic.yaml')


def test_retrieval_model_is_evaluated_blessed_and_pushed(pipeline_run):
    summary = pipeline_run.summaries[MODEL]
    assert summary['rows'] > 20 and summary['items_indexed'] > 1000, summary
    assert 0 <= summary['recall_at_10'] <= summary['recall_at_50'] <= summary['recall_at_100'] <= 1, summary
    assert 0 < summary['mrr'] <= 1 and summary['ndcg_at_10'] <= summary['ndcg_at_100'], summary
    assert summary['sampled_uniform_hr_at_10'] >= summary['recall_at_10'], summary   # 101 items against all
    assert summary['blessed'] is True, summary
    pushed = summary['pushed_model']
    assert os.path.dirname(pushed) == str(pipeline_run.run_dir / 'serving' / MODEL)
    assert os.path.exists(os.path.join(pushed, signatures.WARMUP_FILE))


def test_pushed_model_retrieves_the_trainers_top_k_in_a_fresh_process(pipeline_run):
    examples, expected, k = sample_retrievals(pipeline_run.run_dir, f'Trainer.{MODEL}')
    spec = spec_lib.load(SPEC)
    contexts = [split_for_rank(e, spec)[0].SerializeToString() for e in examples[:40]]
    pushed = pipeline_run.pushed(MODEL)
    served = retrieve_in_fresh_process({pushed: contexts}, k, str(pipeline_run.tmp_path))[pushed]
    np.testing.assert_allclose(served[signatures.SCORES], expected[signatures.SCORES][:40], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(served[signatures.ITEM_IDS], expected[signatures.ITEM_IDS][:40])
    assert np.all(np.diff(served[signatures.SCORES], axis=1) <= 0)       # best first
    assert len({tuple(row) for row in served[signatures.ITEM_IDS]}) > 1   # the context matters


def test_exclusion_k_and_embed_signatures(pipeline_run):
    examples, _, _ = sample_retrievals(pipeline_run.run_dir, f'Trainer.{MODEL}')
    model = tf.saved_model.load(pipeline_run.pushed(MODEL))
    contexts = tf.constant(examples[:4])
    top = model.signatures[signatures.RETRIEVE](context=contexts, k=tf.constant(5))
    ids = top[signatures.ITEM_IDS].numpy().astype(str)
    exclude = np.array([[int(row[0]), int(row[2]), -1] for row in ids], np.int64)
    kept = model.signatures[signatures.RETRIEVE_EXCLUDING](context=contexts, k=tf.constant(5),
                                                           exclude=tf.constant(exclude))
    kept_ids = kept[signatures.ITEM_IDS].numpy().astype(str)
    for row, excluded in zip(kept_ids, exclude):
        assert not {str(excluded[0]), str(excluded[1])} & set(row)
    np.testing.assert_array_equal(kept_ids[:, :3], np.stack([ids[:, 1], ids[:, 3], ids[:, 4]], axis=1))
    candidates = top[signatures.CANDIDATES].numpy()
    assert tf.train.Example.FromString(candidates[0, 0]).features.feature['item_id'].int64_list.value[0] == int(
        ids[0, 0])
    cold = tf.train.Example.FromString(examples[0])
    for name in [n for n in cold.features.feature if n.startswith('hist_')]:
        del cold.features.feature[name].int64_list.value[:]
    cold_top = model.signatures[signatures.RETRIEVE](context=tf.constant([cold.SerializeToString()]),
                                                     k=tf.constant(5))
    popular = np.argsort(-model.popularity.numpy(), kind='stable')[:5]
    np.testing.assert_allclose(cold_top[signatures.SCORES].numpy()[0], model.popularity.numpy()[popular])
    assert model.popularity.numpy().sum() == pytest.approx(1.0, abs=1e-5)
    everything = model.signatures[signatures.RETRIEVE](context=contexts[:1], k=tf.constant(10 ** 9))
    assert everything[signatures.ITEM_IDS].shape[1] == min(1000, model.index.shape[0])
    assert model.signatures[signatures.EMBED_QUERY](context=contexts)[signatures.EMBEDDINGS].shape == (4, 32)
    assert model.signatures[signatures.EMBED_CANDIDATE](candidates=contexts)[signatures.EMBEDDINGS].shape == (4, 32)


def test_new_items_of_the_item_feed_are_in_the_index(pipeline_run, tiny_data):
    model = tf.saved_model.load(pipeline_run.pushed(MODEL))
    trained, index = int(model.trained_items.numpy()), model.index.numpy()
    ids = [i.decode() for i in model.index_ids.numpy()]
    feed = {str(tf.train.Example.FromString(r.numpy()).features.feature['item_id'].int64_list.value[0]): r.numpy()
            for r in tf.data.TFRecordDataset(str(tiny_data / 'tfrecord' / 'items' / 'part-00000.tfrecord'))}
    new = ids[trained:]
    assert len(new) == len(set(feed) - set(ids[:trained])) > 50 and set(new) <= set(feed)
    np.testing.assert_allclose(   # a new item is embedded through its side features, as embed_candidate does
        model.signatures[signatures.EMBED_CANDIDATE](candidates=tf.constant([feed[i] for i in new[:20]]))[
            signatures.EMBEDDINGS].numpy(), index[trained:trained + 20], atol=1e-5, rtol=0)
    assert model.popularity.numpy()[trained:].sum() == 0.0
    examples, _, _ = sample_retrievals(pipeline_run.run_dir, f'Trainer.{MODEL}')
    context = tf.constant(examples[:1])
    scores = model.signatures[signatures.EMBED_QUERY](context=context)[signatures.EMBEDDINGS].numpy()[0] @ index.T
    best = trained + int(np.argmax(scores[trained:]))            # the best new item for this user
    rank = int((scores > scores[best]).sum())
    assert rank < 1000
    top = model.signatures[signatures.RETRIEVE](context=context, k=tf.constant(rank + 1))
    assert top[signatures.ITEM_IDS].numpy()[0, -1].decode() == ids[best]   # retrieve reaches it
    kept = model.signatures[signatures.RETRIEVE_EXCLUDING](context=context, k=tf.constant(rank + 1),
                                                           exclude=tf.constant([[int(ids[best])]], tf.int64))
    assert ids[best] not in {i.decode() for i in kept[signatures.ITEM_IDS].numpy()[0]}


def _two_models(pipeline_run):
    config = model_manager.config_from_flags('din', os.path.dirname(pipeline_run.pushed('din')))
    retrieval = model_manager.config_from_flags(MODEL, os.path.dirname(pipeline_run.pushed(MODEL)))
    config.model_config_list.config.extend(retrieval.model_config_list.config)
    return config


def test_retrieve_then_rank_over_grpc(pipeline_run, tmp_path):
    examples, _, _ = sample_retrievals(pipeline_run.run_dir, f'Trainer.{MODEL}')
    spec = spec_lib.load(SPEC)
    context = split_for_rank(examples[0], spec)[0]
    with ModelServer(_two_models(pipeline_run), ServerOptions(port=0, rest_api_port=-1, host='localhost')) as server:
        target = f'localhost:{server.grpc_port}'
        with ServingClient(target, 'din', timeout_s=60) as client:
            result = client.recommend(context, k=5, retrieval_model=MODEL, candidates=30)
            retrieved = client.retrieve([context], 30, model_name=MODEL)
            joined = [join_for_rank(context, c) for c in retrieved.candidates[0]]
            by_din = client.predict(joined).scores
        order = np.argsort(-by_din, kind='stable')[:5]
        assert result.item_ids == [str(i) for i in retrieved.item_ids[0][order]]
        np.testing.assert_allclose(result.scores, by_din[order], atol=1e-5, rtol=0)
        np.testing.assert_allclose(result.retrieval_scores, retrieved.scores[0][order], atol=1e-6, rtol=0)
        assert np.all(np.diff(result.scores) <= 0)

        context_file = tmp_path / 'context.tfrecord'
        with tf.io.TFRecordWriter(str(context_file)) as writer:
            writer.write(context.SerializeToString())
        done = subprocess.run([sys.executable, '-m', 'serving.client', 'recommend', '--target', target, '--model',
                               'din', '--retrieval_model', MODEL, '--context', str(context_file), '--k', '5',
                               '--candidates', '30'], cwd=REPO, capture_output=True, text=True, timeout=300,
                              check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        rows = [json.loads(line) for line in done.stdout.splitlines()]
        assert [row['item_id'] for row in rows] == result.item_ids
        np.testing.assert_allclose([row['score'] for row in rows], result.scores, atol=1e-6)
