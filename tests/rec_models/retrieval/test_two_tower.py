"""The two-tower model's id dropout (rec_models.retrieval.two_tower): in training, a share of the candidates' ids
become out-of-vocabulary buckets, the ids new items get at serving; never at inference."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, _features  # noqa: E402  pylint: disable=wrong-import-order

V = INPUTS['item_id'].vocab_size
INDEXED = V - 6   # the last five ids of the table are out-of-vocabulary buckets


def _model(**hparams):
    tf.keras.utils.set_random_seed(0)
    model = registry.build('two_tower', INPUTS, {'embedding_dim': 8, 'hidden_units': (16,), **hparams})
    model.set_catalogue({}, index_size=INDEXED)
    model(_features())
    return model


def test_dropped_ids_are_out_of_vocabulary_buckets_at_the_configured_rate():
    model = _model(id_dropout=0.3)
    ids = tf.constant(np.tile(np.arange(1, INDEXED + 1), 200), tf.int64)
    dropped = model.dropped_ids(ids).numpy()
    changed = dropped != ids.numpy()
    assert abs(changed.mean() - 0.3) < 0.02
    assert set(np.unique(dropped[changed])) == set(range(INDEXED + 1, V))   # every bucket, nothing else


def test_id_dropout_acts_in_training_only_and_can_be_off():
    features = _features()
    items = {f.name: features[f.name] for f in _model().item_fields}
    model = _model(id_dropout=0.5)
    inference = [model.candidate_embedding(items, training=False).numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    assert not np.allclose(model.candidate_embedding(items, training=True).numpy(), inference[0])
    off = _model(id_dropout=0.0)
    np.testing.assert_allclose(off.candidate_embedding(items, training=True).numpy(),
                               off.candidate_embedding(items, training=False).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match='id_dropout'):
        _model(id_dropout=1.0)
