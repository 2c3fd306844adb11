"""FNN, the factorisation-machine supported neural network (Zhang et al., *Deep Learning over Multi-field
Categorical Data*, ECIR 2016).

    z = [z_1, …, z_n],  z_i = [w_i, v_i^1, …, v_i^k]        (each field's FM first-order weight and latent vector)
    l_1 = tanh(W_1 z + b_1),  l_2 = tanh(W_2 l_1 + b_2),  ŷ = sigmoid(W_3 l_2 + b_3)

z is the output of :class:`~rec_models.layers.FieldVectors` (``weights`` and ``vectors``, numerics as w_f x_f and
x_f v_f) and, in the paper, it is initialised from a trained FM: with ``fm_model`` the field layer is restored from
an FM exported by this project (the Trainer's serving model or a pushed version directory) before training starts,
then fine-tuned with the MLP. The FM must have been trained on the same Transform output with the same
``embedding_dim`` and ``use_behavior``. Without ``fm_model`` the fields start at random, which makes FNN a plain
Embedding&MLP. Choices: the FM's global bias w0 is left out of z (it is the same for every example); the paper's
layer-wise RBM/DAE pre-training of the hidden layers is not done (the authors report FM initialisation of z as the
part that matters).
"""

import os

import tensorflow as tf

from feature_spec.model_inputs import NUMERIC, SEQUENCE, ModelInputs
from rec_models.base import RankingModel, click_outputs, read_exported_variables, variable_keys
from rec_models.layers import MLP, FieldVectors
from rec_models.registry import register


def fm_checkpoint(path):
    """Checks that ``path`` is an exported model (``<path>/variables/variables.index``); ValueError when not."""
    if not tf.io.gfile.exists(os.path.join(path, 'variables', 'variables.index')):
        raise ValueError(f'fm_model: {path!r} is not an exported model (no variables/variables.index in it); give '
                         'the directory of an FM SavedModel written by the Trainer or the Pusher')


def zero_features(inputs: ModelInputs, rows=1):
    """An all-zero transformed batch of ``rows`` examples (ids 0, empty histories): builds a layer's variables."""
    features = {}
    for field in inputs.fields:
        if field.kind == NUMERIC:
            features[field.name] = tf.zeros([rows], tf.float32)
        elif field.kind == SEQUENCE:
            features[field.name] = tf.zeros([rows, field.max_length], tf.int64)
        else:
            features[field.name] = tf.zeros([rows], tf.int64)
    if inputs.sequence_length:
        features[inputs.sequence_length] = tf.zeros([rows], tf.int64)
    return features


@register('fnn')
class FNN(RankingModel):
    """FNN. ``call(features, training=False) → {'logits', 'probabilities'}``.

    Args:
        inputs: the model inputs.
        frequencies: training-data id counts per table, for the mini-batch-aware L2.
        fm_model: directory of a trained, exported FM whose first-order weights and latent vectors initialise z
            (None: random initialisation).
        hidden_units: widths of the hidden layers (the paper's l_1, l_2).
        activation: the hidden layers' activation (the paper's tanh).
        dropout: dropout rate after each hidden layer.
        l2: λ of the mini-batch-aware L2 on the latent vectors and first-order weights (0: off).
        use_behavior: add the behaviour sequences as fields (as the FM it starts from).
        embedding_dim: k, the width of the latent vectors (as the FM it starts from).
    """

    def __init__(self, inputs: ModelInputs, frequencies=None, fm_model=None, hidden_units=(200, 80),
                 activation='tanh', dropout=0.2, l2=1.0, use_behavior=False, embedding_dim=8, **kwargs):
        super().__init__(inputs, frequencies=frequencies, **kwargs)
        self.hparams = {'fm_model': fm_model, 'hidden_units': tuple(hidden_units), 'activation': activation,
                        'dropout': dropout, 'l2': l2, 'use_behavior': use_behavior, 'embedding_dim': embedding_dim}
        self.fields = FieldVectors(inputs, embedding_dim, use_behavior=use_behavior, l2=l2, frequencies=frequencies,
                                   name='fields')
        self.deep = MLP(hidden_units, activation=activation, dropout=dropout, output_units=1, name='deep')
        if fm_model:
            self._restore_fields(fm_model)

    @classmethod
    def check_hparams(cls, hparams):
        if hparams.get('fm_model'):
            fm_checkpoint(hparams['fm_model'])

    def _restore_fields(self, fm_model):
        """z ← the FM's ``fields`` layer (its embeddings, first-order weights and numeric vectors), read by name from
        the exported FM's variables (:func:`~rec_models.base.read_exported_variables`)."""
        self.fields(zero_features(self.model_inputs))
        exported = read_exported_variables(fm_model)
        mine = {key: v for key, v in variable_keys(self).items() if key.startswith(f'{self.fields.name}/')}
        missing = sorted(set(mine) - set(exported))
        wrong = sorted(key for key in set(mine) & set(exported) if tuple(exported[key].shape) != tuple(mine[key].shape))
        if missing or wrong or not mine:
            raise ValueError(f'fm_model: the fields of {fm_model!r} do not fit this FNN (train the FM on the same '
                             f'Transform output with the same embedding_dim and use_behavior): missing {missing}, '
                             f'other shapes {wrong}')
        for key, variable in mine.items():
            variable.assign(exported[key])

    def call(self, features, training=False):
        fields = self.fields(features, training=training)
        z = tf.concat([fields['weights'][..., tf.newaxis], fields['vectors']], axis=-1)     # [B, n, 1 + k]
        deep = self.deep(tf.reshape(z, [-1, z.shape[1] * z.shape[2]]), training=training)
        return click_outputs(tf.squeeze(deep, axis=-1))
