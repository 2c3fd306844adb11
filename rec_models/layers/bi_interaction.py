"""NFM's Bi-Interaction pooling (He and Chua, *Neural Factorization Machines for Sparse Predictive Analytics*,
SIGIR 2017, eq. 3–4).

For field vectors e_i = x_i v_i (an embedding row for a categorical field, x_f · v_f for a numeric one) the
Bi-Interaction layer pools the n(n−1)/2 element-wise products into one k-vector:

    f_BI(V_x) = Σ_{i<j} e_i ⊙ e_j = ½ [(Σ_i e_i)² − Σ_i e_i²]        (squares element-wise)

in O(k n) instead of O(k n²). Summing f_BI over its k components gives FM's pairwise term
Σ_{i<j} ⟨e_i, e_j⟩ (:class:`~rec_models.layers.interaction.FMSecondOrder`): NFM keeps the k-vector and feeds
it to an MLP. A zero field vector (missing field, x_i = 0) takes part in no pair.
"""

import tensorflow as tf


def bi_interaction(fields):
    """½ [(Σ_i e_i)² − Σ_i e_i²]: field vectors ``[B, n, k]`` → ``[B, k]``."""
    square_of_sum = tf.square(tf.reduce_sum(fields, axis=1))
    sum_of_squares = tf.reduce_sum(tf.square(fields), axis=1)
    return 0.5 * (square_of_sum - sum_of_squares)


class BiInteractionPooling(tf.keras.layers.Layer):
    """f_BI = Σ_{i<j} e_i ⊙ e_j = ½ [(Σ_i e_i)² − Σ_i e_i²]: ``call(fields)``, ``[B, n, k]`` → ``[B, k]``."""

    def call(self, fields):
        return bi_interaction(fields)
