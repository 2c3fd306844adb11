"""What the registry-wide suites do not check of BST: the order of its input sequence and its attention maps."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # noqa: E402

from rec_models import registry  # noqa: E402
from toy_inputs import INPUTS, L, _features, _small  # noqa: E402  pylint: disable=wrong-import-order


def test_the_target_comes_first_then_the_behaviours_newest_first():
    model = registry.build('bst', INPUTS, _small('bst', heads=2, head_dim=4, max_steps=L - 1))
    steps = L - 1  # the newest L − 1 behaviours
    features = _features()
    embeddings = model.embedding(features)
    sequence, mask = (t.numpy() for t in model.input_sequence(features, embeddings))
    keys, query, side = (t.numpy() for t in model.behaviours(embeddings))
    assert sequence.shape == (len(features['item_id']), steps + 1, keys.shape[-1] + side.shape[-1])
    for example, length in enumerate(features['hist_length']):
        np.testing.assert_array_equal(mask[example], np.arange(steps + 1) <= min(length, steps))
        np.testing.assert_allclose(sequence[example, 0, :keys.shape[-1]], query[example])
        np.testing.assert_allclose(sequence[example, 0, keys.shape[-1]:], model.target_side.numpy())
        for slot in range(1, min(length, steps) + 1):  # slot 1 is the newest behaviour, step length − 1
            np.testing.assert_allclose(sequence[example, slot], np.concatenate([keys[example, length - slot],
                                                                                side[example, length - slot]]))
    outputs = model(features)
    assert outputs['attention_maps'].shape == (len(features['item_id']), 2, steps + 1, steps + 1)
    assert (features['hist_length'] > steps).any()  # some histories are cut to their newest steps
    empty = int(np.argmin(features['hist_length']))
    assert features['hist_length'][empty] == 0  # the target attends to itself only
    np.testing.assert_allclose(outputs['attention_maps'].numpy()[empty, :, 0, 0], 1.0, rtol=1e-6)
