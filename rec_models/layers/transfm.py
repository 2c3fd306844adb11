"""TransFM's translation-based pairwise term (Pasricha and McAuley, *Translation-based Factorization Machines for
Sequential Recommendation*, RecSys 2018, eq. 4 and §3.3).

Every feature i has an embedding v_i and a translation v'_i; the inner product ⟨v_i, v_j⟩ of FM is replaced by
the squared distance from the translated v_i to v_j:

    ŷ = w0 + Σ_i w_i x_i + Σ_{i<j} d²(v_i + v'_i, v_j) x_i x_j,      d²(a, b) = ‖a − b‖²

With a_i = v_i + v'_i the squared distance expands into squared norms and an inner product,

    d²(a_i, v_j) = ‖a_i‖² + ‖v_j‖² − 2 ⟨a_i, v_j⟩,     ‖a_i‖² = ‖v_i‖² + ‖v'_i‖² + 2 ⟨v_i, v'_i⟩,

and each of the three terms is a sum over i<j of a product of one function of field i and one of field j. Such a
sum is computed in O(n k) with the exclusive prefix (field) sums S_j[g] = Σ_{i<j} g_i:

    Σ_{i<j} d²(a_i, v_j) x_i x_j = Σ_j x_j ( S_j[x‖a‖²] + S_j[x] ‖v_j‖² − 2 ⟨S_j[x a], v_j⟩ ).

Choice left open by the paper: d²(a_i, v_j) is not symmetric in i and j (the translation belongs to the earlier
feature of the pair), so Σ_{i<j} depends on the order of the fields. This layer computes the equation as written,
i<j in the order of the input's field axis (put the fields in the paper's order: user, previous item, next item,
context). FM's usual rewrite ½ [Σ_i Σ_j − Σ_{i=j}] would instead symmetrise each pair to
½ [d²(a_i, v_j) + d²(a_j, v_i)]; the prefix sums keep the ordered sum at the same O(n k) cost.

Inputs are the *unscaled* vectors v_i and v'_i: the distance is between feature vectors, and x_i x_j multiplies
the distance, so scaling the vectors by x (as :class:`~rec_models.layers.interaction.FMSecondOrder` takes them)
would give x_i² x_j instead of x_i x_j. Numeric values, or 0/1 presence of a field, are passed as ``values``.
"""

import tensorflow as tf


class TranslationInteraction(tf.keras.layers.Layer):
    """Σ_{i<j} ‖v_i + v'_i − v_j‖² x_i x_j in O(n k) → ``[B]``.

    ``call(embeddings, translations, values=None)``: ``embeddings`` v ``[B, n, k]`` and ``translations`` v'
    ``[B, n, k]`` (not multiplied by x), ``values`` x ``[B, n]`` (``None``: all ones, every field a present
    categorical one; 0 drops a field from every pair). One field (n = 1) gives 0.
    """

    def call(self, embeddings, translations, values=None):
        if values is None:
            values = tf.ones(tf.shape(embeddings)[:2], embeddings.dtype)
        values = tf.cast(values, embeddings.dtype)
        translated = embeddings + translations                                            # a_i = v_i + v'_i
        before = tf.math.cumsum(values, axis=1, exclusive=True)                           # S_j[x]: [B, n]
        norms_before = tf.math.cumsum(values * tf.reduce_sum(tf.square(translated), axis=-1), axis=1,
                                      exclusive=True)                                     # S_j[x‖a‖²]: [B, n]
        vectors_before = tf.math.cumsum(values[..., tf.newaxis] * translated, axis=1, exclusive=True)  # S_j[x a]
        per_field = (norms_before + before * tf.reduce_sum(tf.square(embeddings), axis=-1)
                     - 2.0 * tf.reduce_sum(vectors_before * embeddings, axis=-1))
        return tf.reduce_sum(values * per_field, axis=1)
