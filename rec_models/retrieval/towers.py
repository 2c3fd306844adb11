"""The feature towers the retrieval models share: a field's embeddings looked up by id, a context pooled into one
vector."""

from typing import Dict, Sequence

import tensorflow as tf

from feature_spec.model_inputs import NUMERIC, SEQUENCE, InputField
from rec_models.layers import FieldEmbedding, MaskedMeanPooling


def lookup(embedding: FieldEmbedding, features, fields: Sequence[InputField]) -> Dict[str, tf.Tensor]:
    """``{name: embeddings}`` of the id ``fields`` present in ``features``, from ``embedding``'s (shared) tables."""
    return {f.name: tf.gather(embedding.tables[f.table], features[f.name]) for f in fields
            if f.table is not None and f.name in features}


def pooled_context(embedding: FieldEmbedding, features, fields: Sequence[InputField], sequence_length=None):
    """``[B, Σ widths]``: the fields' embeddings, numeric values as one column each, and each sequence's masked mean
    over its valid steps (the averaged watch history of YouTube DNN), concatenated in field order."""
    embedded = lookup(embedding, features, fields)
    parts = []
    for field in fields:
        if field.kind == NUMERIC:
            parts.append(tf.reshape(tf.cast(features[field.name], tf.float32), [-1, 1]))
        elif field.kind == SEQUENCE:
            mask = tf.sequence_mask(features[sequence_length], field.max_length)
            parts.append(MaskedMeanPooling()(embedded[field.name], mask))
        else:
            parts.append(embedded[field.name])
    return tf.concat(parts, axis=-1)


def context_width(fields: Sequence[InputField]) -> int:
    """The width of :func:`pooled_context` over ``fields``."""
    return sum(1 if f.kind == NUMERIC else f.embedding_dim for f in fields)
