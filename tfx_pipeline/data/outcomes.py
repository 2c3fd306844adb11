"""What follows an impression besides the click: the post-click funnel of ESM2, a satisfaction label, the
counterfactual click-if-examined label and a privileged reading of the page dwell.

Each is drawn from random streams of its own (per chunk of users, and one for the items' satisfaction quality), so
the click, every feature and every earlier ground-truth column are the same with or without them.

**Post-click funnel** (Wen et al., *Entire Space Multi-Task Model via Post-Click Behavior Decomposition*, SIGIR
2020). After a click the user takes a *D-Action* (cart or wish list, the ``cart`` label) or an *O-Action* (any
other), and may purchase after either:

    a = w_p (x_power − x_price),     ℓ = log(1 + S_brand)                  (affordability, brand loyalty)
    p_D = σ(c_D + a + β_ℓ ℓ),   p_{buy|D} = σ(c_{BD} + a),   p_{buy|O} = σ(c_{BO} + a + β_ℓ ℓ)
    true_cvr = p(buy | click) = p_D · p_{buy|D} + (1 − p_D) · p_{buy|O}

so the conversion depends on price against purchase power and on brand loyalty, the click mostly on the recency of
interest: related tasks, not the same one. ``cart`` = click ∧ D, ``purchase`` = click ∧ buy.

**Satisfaction** (the second objective of Zhao et al., *Recommending What Video to Watch Next*, RecSys 2019, and of
the MMoE benchmark). After a click,

    true_satisfaction = σ(c_s + ρ (z − b0) + √(1 − ρ²) v_i),    v_i ~ N(0, 1) the item's satisfaction quality

with z the relevance logit (b0 its bias) and ρ = ``satisfaction_correlation`` the knob relating the two tasks:
``satisfied`` = click ∧ Bernoulli(true_satisfaction).

**Counterfactuals**, for every impression: ``click_if_examined`` ~ Bernoulli(true_relevance), the click had the
impression been examined for sure (position 0's examination is 1), against which a debiased model's relevance is
judged; ``conversion_if_clicked`` ~ Bernoulli(true_cvr), the purchase had the impression been clicked, against
which a pCVR is judged over the entire impression space (the sample selection bias of ESMM).

**Privileged feature**: ``page_dwell`` = exp(3 + 0.5 (z + N(0, σ_d²))) seconds, σ_d = ``privileged_noise``: a
noisy reading, known only after the impression, of how long the user stayed on the item's page.
"""

from typing import Dict

import numpy as np

# Spawn keys of the outcome streams, apart from the chunks' (0, 1, …) and the other streams' (2**32 − 1, − 2).
OUTCOME_STREAM = 2 ** 32 - 3
ITEM_OUTCOME_STREAM = 2 ** 32 - 4

INT_COLUMNS = ('cart', 'purchase', 'satisfied', 'click_if_examined', 'conversion_if_clicked')
FLOAT_COLUMNS = ('page_dwell', 'true_cvr', 'true_satisfaction')


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def item_satisfaction(seed: int, num_items: int) -> np.ndarray:
    """v_i ~ N(0, 1) per catalogue item, from the items' own outcome stream."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(ITEM_OUTCOME_STREAM,))))
    return rng.normal(0.0, 1.0, num_items)


def outcome_columns(config, z: np.ndarray, click: np.ndarray, affordability: np.ndarray, brand_count: np.ndarray,
                    satisfaction_quality: np.ndarray, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """The funnel, satisfaction, counterfactual and privileged columns of impressions.

    Args:
        config: the generator's config (its funnel, satisfaction and privileged knobs).
        z: relevance logits; click: the clicks drawn from them; affordability: a = w_p (x_power − x_price);
        brand_count: S_brand, the recency-weighted count of the history's behaviours with the item's brand;
        satisfaction_quality: v_i of each impression's item; rng: the chunk's outcome stream.
    """
    loyalty = config.brand_loyalty_weight * np.log1p(brand_count)
    p_d = _sigmoid(config.cart_bias + affordability + loyalty)
    p_buy_d = _sigmoid(config.purchase_bias + affordability)
    p_buy_o = _sigmoid(config.direct_purchase_bias + affordability + loyalty)
    d_action = rng.random(z.size) < p_d
    bought = rng.random(z.size) < np.where(d_action, p_buy_d, p_buy_o)
    rho = config.satisfaction_correlation
    p_satisfied = _sigmoid(config.satisfaction_bias + rho * (z - config.relevance_bias)
                           + np.sqrt(1.0 - rho ** 2) * satisfaction_quality)
    satisfied = rng.random(z.size) < p_satisfied
    click_if_examined = rng.random(z.size) < _sigmoid(z)
    dwell = np.exp(3.0 + 0.5 * (z + rng.normal(0.0, config.privileged_noise, z.size)))
    true_cvr = p_d * p_buy_d + (1.0 - p_d) * p_buy_o
    return {
        'cart': click & d_action,
        'purchase': click & bought,
        'satisfied': click & satisfied,
        'click_if_examined': click_if_examined,
        'page_dwell': dwell,
        'true_cvr': true_cvr,
        'true_satisfaction': p_satisfied,
        'conversion_if_clicked': rng.random(z.size) < true_cvr,
    }
