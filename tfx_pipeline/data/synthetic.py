"""Synthetic e-commerce click log whose ground truth is known (the generative model: README.md, "The synthetic data").

One row is one impression: a user, a target item shown at a position of a page, the user's behaviour history
strictly before the request, and the labels. Every impression also carries its true click probability

    true_ctr = true_examination · true_relevance,    click ~ Bernoulli(true_ctr),

so the AUC of ``true_ctr`` on the test labels (the Bayes AUC) is the ceiling any model can reach.

Everything is vectorised NumPy drawn from one ``numpy.random.Generator(PCG64)`` tree seeded by
``GeneratorConfig.seed``; the same config gives the same arrays. Users are generated in chunks of
``users_per_chunk`` so that large presets stay within memory (see :func:`generate_chunks`).

List columns (the behaviour history) are :class:`Ragged` pairs ``(values, row_lengths)``: the flat int64 values
of all rows, concatenated in row order, and the int64 number of values of each row.
"""

import dataclasses
from typing import Dict, Iterator, NamedTuple, Optional, Tuple, Union

import numpy as np

from rec_models.metrics import auc
from tfx_pipeline.data import outcomes

SECONDS_PER_DAY = 86_400
SPLITS = ('train', 'eval', 'test')

ID_COLUMNS = ('impression_id', 'request_id', 'user_id')
INT_COLUMNS = ID_COLUMNS + ('age_bucket', 'gender', 'city', 'item_id', 'category', 'brand',
                            'request_time', 'hour', 'device', 'position', 'query', 'click') + outcomes.INT_COLUMNS
GROUND_TRUTH_COLUMNS = ('true_examination', 'true_relevance', 'true_ctr', 'true_cvr', 'true_satisfaction',
                        'click_if_examined', 'conversion_if_clicked')
FLOAT_COLUMNS = ('purchase_power', 'price', 'bid', 'true_examination', 'true_relevance',
                 'true_ctr') + outcomes.FLOAT_COLUMNS
# List columns by the log they come from; the lists of one log have the same length in every row.
LIST_GROUPS = (('hist_item_id', 'hist_category', 'hist_brand', 'hist_behavior_type', 'hist_time'),
               ('hist_query', 'hist_query_time'),
               ('context_item_id', 'context_category', 'context_brand'),
               ('unclicked_item_id', 'unclicked_category', 'unclicked_brand', 'unclicked_time'))
LIST_COLUMNS = sum(LIST_GROUPS, ())
COLUMNS = INT_COLUMNS + FLOAT_COLUMNS + LIST_COLUMNS

NUM_AGE_BUCKETS = 7
NUM_DEVICES = 3
NUM_HOUR_BUCKETS = 6
AGE_PROBS = (0.06, 0.20, 0.25, 0.20, 0.14, 0.10, 0.05)
LOG_PURCHASE_POWER_BY_AGE = (3.5, 3.8, 4.0, 4.2, 4.2, 4.0, 3.8)
BEHAVIOR_TYPE_PROBS = (0.80, 0.15, 0.05)   # click, cart, buy
DEVICE_PROBS = (0.60, 0.30, 0.10)
DEVICE_EFFECT = (0.0, -0.15, 0.10)


class Ragged(NamedTuple):
    """A list column: row ``r`` holds ``values[row_splits[r]:row_splits[r + 1]]``."""
    values: np.ndarray
    row_lengths: np.ndarray

    @property
    def row_splits(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.row_lengths)]).astype(np.int64)

    def to_padded(self, length: Optional[int] = None, pad_value: int = 0) -> np.ndarray:
        """``[rows, length]`` matrix, each row left-aligned (oldest first) and padded with ``pad_value``.

        ``length`` defaults to the longest row; longer rows keep their last (most recent) ``length`` values.
        """
        lengths = np.asarray(self.row_lengths, dtype=np.int64)
        length = int(lengths.max(initial=0)) if length is None else length
        kept = np.minimum(lengths, length)
        starts = self.row_splits[1:] - kept
        out = np.full((lengths.size, length), pad_value, dtype=self.values.dtype)
        rows = np.repeat(np.arange(lengths.size), kept)
        out[rows, ragged_arange(np.zeros_like(kept), kept)] = self.values[ragged_arange(starts, kept)]
        return out

    def slice_rows(self, begin: int, end: int) -> 'Ragged':
        splits = self.row_splits
        return Ragged(self.values[splits[begin]:splits[end]], self.row_lengths[begin:end])


Column = Union[np.ndarray, Ragged]
Split = Dict[str, Column]


def padded(column: Ragged, length: Optional[int] = None, pad_value: int = 0) -> np.ndarray:
    """Padded ``[rows, length]`` matrix of a list column (see :meth:`Ragged.to_padded`)."""
    return column.to_padded(length, pad_value)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Every knob of the generator (the model: README.md, "The synthetic data"). Times count from ``start_time`` (unix
    seconds); ``num_impressions`` is rounded down to whole pages of ``page_size``."""
    seed: int = 0
    # Sizes.
    num_users: int = 20_000
    num_items: int = 20_000
    num_categories: int = 24
    num_brands: int = 400
    num_cities: int = 50
    num_impressions: int = 400_000
    page_size: int = 10
    history_length: int = 60
    users_per_chunk: int = 50_000
    # Time: behaviours start warmup_days before start_time (histories only); requests fill horizon_days.
    start_time: int = 1_704_067_200
    horizon_days: float = 30.0
    warmup_days: float = 7.0
    train_fraction: float = 0.8
    eval_fraction: float = 0.1
    # Catalogue.
    new_item_fraction: float = 0.2
    popularity_exponent: float = 1.1
    quality_std: float = 0.3
    # A popularity shift (the streaming frequency estimate's case, Yi et al. 2019): from day popularity_shift_day of
    # the horizon on, item k's exposure weight is (1 − ρ) w_k + ρ w_π(k), π a random permutation of the items within
    # each category, ρ = popularity_shift. Drawn from its own random stream; 0 (off) leaves the data as without it.
    popularity_shift: float = 0.0
    popularity_shift_day: float = 15.0
    # Users and their behaviour log.
    new_user_fraction: float = 0.3
    session_gap_days: float = 1.0
    behaviors_per_session: float = 4.0
    behavior_gap_seconds: float = 90.0
    interest_concentration: float = 2.0
    innovation_concentration: float = 1.0
    drift: float = 0.2
    # Session structure (DSIN): session s focuses on one category f_s ~ π_s and its behaviours, page and relevance
    # follow (1 − σ) π_s + σ e_{f_s}, σ = session_focus: homogeneous sessions that differ from each other. The focus
    # is drawn from its own random stream; 0 (off) leaves the data as without it.
    session_focus: float = 0.0
    # Requests and the production ranker.
    interest_candidate_share: float = 0.6
    preferred_device_prob: float = 0.85
    ranker_noise: float = 1.5
    # Relevance logit z and examination.
    relevance_bias: float = -3.4
    history_weight: float = 0.9
    brand_weight: float = 0.5
    decay_days: float = 1.0
    age_cross_std: float = 0.3
    price_cross_weight: float = 0.3
    hour_cross_std: float = 0.25
    interest_weight: float = 0.5
    position_decay: float = 0.25
    # The post-click funnel (ESM2; tfx_pipeline/data/outcomes.py): a D-Action (cart or wish list) with
    # σ(cart_bias + a + β_ℓ ℓ), a purchase after it with σ(purchase_bias + a), after an O-Action with
    # σ(direct_purchase_bias + a + β_ℓ ℓ); a = conversion_price_weight (x_power − x_price), β_ℓ = brand_loyalty_weight.
    cart_bias: float = -1.7
    purchase_bias: float = -0.6
    direct_purchase_bias: float = -3.0
    conversion_price_weight: float = 0.8
    brand_loyalty_weight: float = 0.6
    # Satisfaction after a click: σ(satisfaction_bias + ρ (z − b0) + √(1 − ρ²) v_item), ρ = satisfaction_correlation.
    satisfaction_bias: float = 0.0
    satisfaction_correlation: float = 0.5
    # The privileged page dwell: exp(3 + 0.5 (z + N(0, privileged_noise²))) seconds.
    privileged_noise: float = 1.0
    # Negative down-sampling of the training split: each unclicked training impression is kept with this rate w
    # (its own random stream; 1: all kept). The metadata records w, and a feature spec reading the data must say the
    # same (negative_sampling_rate) so that the served scores are calibrated back.
    negative_sampling_rate: float = 1.0
    # Searches (ATRank, DUPN): a session is a search session with search_session_share; its query, issued at its
    # start, is one of query_terms_per_category terms of a category drawn from the session's π. The log of each
    # impression keeps the user's last query_history_length queries and last unclicked_history_length
    # shown-but-unclicked impressions (DSTN). Drawn from their own random stream: the other columns do not change.
    search_session_share: float = 0.4
    query_terms_per_category: int = 4
    query_history_length: int = 20
    unclicked_history_length: int = 30

    def validate(self) -> 'GeneratorConfig':
        """Raise ConfigError (a ValueError) naming the first knob that is out of range; return self."""
        for name in ('num_users', 'num_items', 'num_categories', 'num_brands', 'num_cities',
                     'num_impressions', 'page_size', 'history_length', 'users_per_chunk', 'query_terms_per_category',
                     'query_history_length', 'unclicked_history_length'):
            _check(name, getattr(self, name) >= 1, 'must be a positive integer')
        _check('num_brands', self.num_brands >= self.num_categories, 'must be >= num_categories')
        _check('num_items', self.num_items >= self.num_categories, 'must be >= num_categories')
        _check('num_impressions', self.num_impressions >= self.page_size, 'must be >= page_size')
        for name in ('horizon_days', 'session_gap_days', 'behavior_gap_seconds', 'decay_days',
                     'interest_concentration', 'innovation_concentration', 'behaviors_per_session'):
            _check(name, getattr(self, name) > 0, 'must be positive')
        _check('warmup_days', self.warmup_days >= 0, 'must be >= 0')
        _check('behaviors_per_session', self.behaviors_per_session >= 1, 'must be >= 1')
        _check('privileged_noise', self.privileged_noise >= 0, 'must be >= 0')
        _check('negative_sampling_rate', 0 < self.negative_sampling_rate <= 1, 'must lie in (0, 1]')
        _check('popularity_shift_day', self.popularity_shift_day >= 0, 'must be >= 0')
        for name in ('popularity_shift', 'new_item_fraction', 'new_user_fraction', 'drift', 'session_focus',
                     'interest_candidate_share', 'preferred_device_prob', 'search_session_share',
                     'satisfaction_correlation'):
            _check(name, 0 <= getattr(self, name) <= 1, 'must lie in [0, 1]')
        _check('train_fraction', 0 < self.train_fraction < 1, 'must lie in (0, 1)')
        _check('eval_fraction', 0 < self.eval_fraction < 1 - self.train_fraction,
               'must lie in (0, 1 - train_fraction)')
        return self

    @property
    def num_requests(self) -> int:
        return self.num_impressions // self.page_size


class ConfigError(ValueError):
    """A knob of GeneratorConfig is out of range; ``knob`` names it."""

    def __init__(self, knob: str, message: str):
        super().__init__(f'GeneratorConfig.{knob} {message}')
        self.knob = knob


def _check(name: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(name, message)


PRESETS = {
    'tiny': GeneratorConfig(num_users=600, num_items=2_000, num_brands=120, num_impressions=10_000),
    'small': GeneratorConfig(num_users=3_000, num_items=6_000, num_brands=200, num_impressions=60_000),
    'default': GeneratorConfig(),
    'large': GeneratorConfig(num_users=500_000, num_items=200_000, num_brands=2_000, num_cities=200,
                             num_impressions=10_000_000),
}


@dataclasses.dataclass
class Dataset:
    """The generated log: ``splits[name][column]`` (name in SPLITS), its ``metadata`` (see :func:`summarize`) and
    the item feed (:func:`item_feed`)."""
    splits: Dict[str, Split]
    metadata: dict
    item_feed: Optional[Split] = None


def generate(config: GeneratorConfig) -> Dataset:
    """Generate the whole log in memory: the chunks of :func:`generate_chunks`, concatenated per split."""
    chunks = list(generate_chunks(config))
    splits = {name: _concat([chunk[name] for chunk in chunks]) for name in SPLITS}
    return Dataset(splits=splits, metadata=summarize(config, [summary_columns(chunk) for chunk in chunks]),
                   item_feed=item_feed(config))


ITEM_FEED_COLUMNS = ('item_id', 'category', 'brand', 'price')
ITEMS = 'items'   # the item feed's directory beside the splits'


def item_feed(config: GeneratorConfig) -> Split:
    """The item feed: every item of the catalogue with its side features (:data:`ITEM_FEED_COLUMNS`, the values the
    log's rows show), ordered by id. What a shop's item table lists, items nobody was shown in the training split
    included: a retrieval model's index reaches a new item through it (its id is out of the vocabulary, its side
    features are not). Choice: the table as of the log's end (what a daily re-index of the served model would have
    reached by the test days); the log's rows do not change."""
    config.validate()
    world_seed = np.random.SeedSequence(config.seed).spawn(1 + _num_chunks(config))[0]
    world = _make_world(config, np.random.Generator(np.random.PCG64(world_seed)))
    order = np.argsort(world['item_id'], kind='stable')
    return {'item_id': world['item_id'][order], 'category': world['item_category'][order],
            'brand': world['item_brand'][order], 'price': world['item_price'][order].astype(np.float32)}


def generate_chunks(config: GeneratorConfig) -> Iterator[Dict[str, Split]]:
    """Yield the log one chunk of users at a time: ``{split: {column: array}}``.

    Items and the model's global tables are shared by all chunks; each chunk of ``users_per_chunk`` users gets
    its share of the requests and its own random stream. Rows of a chunk are ordered by (request_time,
    request_id, position); ``request_id`` and ``impression_id`` are unique over all chunks.
    """
    config.validate()
    world_seed, *chunk_seeds = np.random.SeedSequence(config.seed).spawn(1 + _num_chunks(config))
    world = _make_world(config, np.random.Generator(np.random.PCG64(world_seed)))
    bounds = np.linspace(0, config.num_users, len(chunk_seeds) + 1).round().astype(np.int64)
    request_bounds = (bounds * config.num_requests) // config.num_users
    for k, seed in enumerate(chunk_seeds):
        rng = np.random.Generator(np.random.PCG64(seed))
        search_rng, focus_rng, outcome_rng, sampling_rng = (np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            config.seed, spawn_key=(stream, k)))) for stream in (_SEARCH_STREAM, _FOCUS_STREAM, outcomes.OUTCOME_STREAM,
                                                                 _SAMPLING_STREAM))
        users = _make_users(config, world, rng, np.arange(bounds[k], bounds[k + 1]))
        rows = _make_chunk(config, world, users, (rng, search_rng, focus_rng, outcome_rng),
                           int(request_bounds[k + 1] - request_bounds[k]), first_request_id=int(request_bounds[k]))
        splits = _split_by_time(config, rows)
        if config.negative_sampling_rate < 1.0:
            splits['train'] = _sample_negatives(splits['train'], config.negative_sampling_rate, sampling_rng)
        yield splits


_SEARCH_STREAM = 2 ** 32 - 1   # spawn key of the searches' streams, apart from the chunks' (0, 1, …)
_FOCUS_STREAM = 2 ** 32 - 2    # spawn key of the session foci's streams
_SAMPLING_STREAM = 2 ** 32 - 5  # spawn key of the negative down-sampling's streams
_SHIFT_STREAM = 2 ** 32 - 6     # spawn key of the popularity shift's permutation


def _num_chunks(config: GeneratorConfig) -> int:
    return -(-config.num_users // config.users_per_chunk)


# ---------------------------------------------------------------------------------------------------------------
# Global tables: catalogue and cross matrices.


def _make_world(config: GeneratorConfig, rng: np.random.Generator) -> dict:
    """Items (grouped by category, first-appearance order within a category) and the model's global tables."""
    c = config.num_categories
    category_share = rng.dirichlet(np.full(c, 5.0))
    age_preference = np.exp(rng.normal(0.0, 1.0, (NUM_AGE_BUCKETS, c)))
    world = {
        'category_share': category_share,
        'age_preference': age_preference / age_preference.sum(axis=1, keepdims=True),
        'age_cross': rng.normal(0.0, config.age_cross_std, (NUM_AGE_BUCKETS, c)),
        'hour_cross': rng.normal(0.0, config.hour_cross_std, (NUM_HOUR_BUCKETS, c)),
    }
    world.update(_make_items(config, rng, category_share))
    world['item_satisfaction'] = outcomes.item_satisfaction(config.seed, config.num_items)
    if config.popularity_shift > 0:
        _shift_popularity(config, world)
    return world


def _shift_popularity(config: GeneratorConfig, world: dict) -> None:
    """The exposure weights after the shift (``popularity_shift``): ``item_cum_popularity_shifted`` and the time
    it starts (seconds into the horizon)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(config.seed, spawn_key=(_SHIFT_STREAM,))))
    weights = np.diff(world['item_cum_popularity'])
    bounds = world['category_bounds']
    permuted = np.concatenate([rng.permutation(weights[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])])
    shifted = (1.0 - config.popularity_shift) * weights + config.popularity_shift * permuted
    world['item_cum_popularity_shifted'] = np.r_[0.0, np.cumsum(shifted)]
    world['popularity_shift_time'] = config.popularity_shift_day * SECONDS_PER_DAY


def _make_items(config: GeneratorConfig, rng: np.random.Generator, category_share: np.ndarray) -> dict:
    """The catalogue, stored in sampling order: by category, then by first-appearance time.

    price_i = exp(μ_cat + ε_brand + ε_i); popularity_i = rank_i^(−s) with rank_i a random rank within the
    category; ~new_item_fraction of items appear uniformly over the horizon, the rest exist from the start
    (at least one item per category does).
    """
    n, c = config.num_items, config.num_categories
    category = np.r_[np.arange(c), rng.choice(c, n - c, p=category_share)]
    horizon = config.horizon_days * SECONDS_PER_DAY
    is_new = (rng.random(n) < config.new_item_fraction) & (np.arange(n) >= c)
    appear = np.where(is_new, rng.uniform(0.0, horizon, n), -config.warmup_days * SECONDS_PER_DAY - 1.0)
    order = np.lexsort((appear, category))
    category, appear = category[order], appear[order]
    bounds = np.searchsorted(category, np.arange(c + 1))
    brand_category = np.sort(np.r_[np.arange(c), rng.choice(c, config.num_brands - c, p=category_share)])
    brand_bounds = np.searchsorted(brand_category, np.arange(c + 1))
    brand_cum = np.r_[0.0, np.cumsum(rng.lognormal(0.0, 1.0, config.num_brands))]
    brand = _sample_segments(brand_cum, brand_bounds[category], brand_bounds[category + 1], rng.random(n))
    log_price = (rng.normal(3.5, 0.7, c)[category] + rng.normal(0.0, 0.3, config.num_brands)[brand]
                 + rng.normal(0.0, 0.4, n))
    rank = np.empty(n)
    rank[np.lexsort((rng.random(n), category))] = 1 + np.arange(n) - bounds[category]
    return {
        'item_id': rng.permutation(n).astype(np.int64),
        'item_category': category.astype(np.int64),
        'item_brand': brand.astype(np.int64),
        'item_price': np.exp(log_price),
        'item_x_price': (log_price - log_price.mean()) / log_price.std(),
        'item_quality': rng.normal(0.0, config.quality_std, n),
        'item_bid': rng.lognormal(-0.5, 0.5, n) * rng.lognormal(0.0, 0.3, c)[category],
        'item_cum_popularity': np.r_[0.0, np.cumsum(rank ** -config.popularity_exponent)],
        'item_appear_key': category * _TIME_KEY + appear,
        'category_bounds': bounds,
    }


# ---------------------------------------------------------------------------------------------------------------
# Users, sessions, drifting interests and the behaviour log.


def _make_users(config: GeneratorConfig, world: dict, rng: np.random.Generator, user_ids: np.ndarray) -> dict:
    """Profile of each user; long-run interest μ_u ~ Dir(α · Ā[age_u]) with Ā the age × category preference."""
    n = user_ids.size
    age = rng.choice(NUM_AGE_BUCKETS, n, p=AGE_PROBS)
    city_weight = 1.0 / np.arange(1, config.num_cities + 1)
    log_power = np.asarray(LOG_PURCHASE_POWER_BY_AGE)[age] + rng.normal(0.0, _LOG_POWER_STD, n)
    mean, std = _log_power_moments()
    return {
        'user_id': user_ids.astype(np.int64),
        'age_bucket': age.astype(np.int64),
        'gender': rng.choice(3, n, p=(0.475, 0.475, 0.05)).astype(np.int64),
        'city': rng.choice(config.num_cities, n, p=city_weight / city_weight.sum()).astype(np.int64),
        'purchase_power': np.exp(log_power),
        'x_power': (log_power - mean) / std,
        'device': rng.choice(NUM_DEVICES, n, p=DEVICE_PROBS),
        'profile': _dirichlet(rng, config.interest_concentration * world['age_preference'][age]),
        'is_new': rng.random(n) < config.new_user_fraction,
        'session_rate': rng.lognormal(-0.125, 0.5, n) / config.session_gap_days,
    }


_LOG_POWER_STD = 0.6


def _log_power_moments():
    """Mean and standard deviation of log purchase power over the age mixture."""
    probs, means = np.asarray(AGE_PROBS), np.asarray(LOG_PURCHASE_POWER_BY_AGE)
    mean = probs @ means
    return mean, np.sqrt(probs @ (means - mean) ** 2 + _LOG_POWER_STD ** 2)


def _make_sessions(config: GeneratorConfig, users: dict, rng: np.random.Generator) -> dict:
    """Session starts: a Poisson process of rate λ_u · f(hour) per user from its join time, by thinning.

    f(h) = 1 + 0.6 cos(2π (h − 21) / 24) peaks in the evening; the gaps are thus exponential (mean
    ``session_gap_days`` on average over users) modulated by the time of day. New users join uniformly over the
    horizon and have a session at their join time; the others exist from the start of the warm-up.
    """
    n = users['user_id'].size
    begin, end = -config.warmup_days * SECONDS_PER_DAY, config.horizon_days * SECONDS_PER_DAY
    join = np.where(users['is_new'], rng.uniform(0.0, end, n), begin)
    counts = rng.poisson(users['session_rate'] * (end - join) / SECONDS_PER_DAY * _DIURNAL_MAX)
    user = np.repeat(np.arange(n), counts)
    start = join[user] + rng.random(user.size) * (end - join)[user]
    hour = ((config.start_time + start) // 3600) % 24
    keep = rng.random(user.size) * _DIURNAL_MAX < 1.0 + 0.6 * np.cos(2 * np.pi * (hour - 21) / 24)
    new_users = np.flatnonzero(users['is_new'])
    user = np.r_[new_users, user[keep]]
    start = np.floor(np.r_[join[new_users], start[keep]]).astype(np.int64)
    order = np.lexsort((start, user))
    return {'user': user[order], 'start': start[order]}


_DIURNAL_MAX = 1.6


def _drift_interests(config: GeneratorConfig, world: dict, users: dict, sessions: dict,
                     rng: np.random.Generator) -> np.ndarray:
    """Interest π of every session: π_{u,0} = μ_u and π_{u,s} = (1 − ρ) π_{u,s−1} + ρ D_{u,s},

    D_{u,s} ~ Dir(κ (μ_u + Ā[age_u]) / 2), ρ = ``drift``: each session a new, sparse interest partly replaces
    the old ones. Sessions are sorted by user, so session s − 1 of a user is the row before session s.
    """
    user = sessions['user']
    profile = users['profile'][user]
    prior = 0.5 * (profile + world['age_preference'][users['age_bucket'][user]])
    innovation = _dirichlet(rng, config.innovation_concentration * prior)
    rank = np.arange(user.size) - np.searchsorted(user, user)
    by_rank = np.argsort(rank, kind='stable')
    rank_bounds = np.searchsorted(rank[by_rank], np.arange(rank.max(initial=0) + 2))
    interest = profile
    for r in range(1, rank_bounds.size - 1):
        rows = by_rank[rank_bounds[r]:rank_bounds[r + 1]]
        interest[rows] = (1 - config.drift) * interest[rows - 1] + config.drift * innovation[rows]
    return interest


def _focus_sessions(config: GeneratorConfig, interest: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each session's interest (1 − σ) π_s + σ e_{f_s} with its focus f_s ~ π_s, σ = ``session_focus``; the drift
    recursion runs on π, so the next session's focus is drawn anew. σ = 0 returns π and draws nothing."""
    if config.session_focus == 0:
        return interest
    sessions = np.arange(interest.shape[0])
    focus = _sample_rows(interest, sessions, rng.random(sessions.size))
    focused = (1 - config.session_focus) * interest
    focused[sessions, focus] += config.session_focus
    return focused


def _make_behaviors(config: GeneratorConfig, world: dict, sessions: dict, interest: np.ndarray,
                    rng: np.random.Generator) -> dict:
    """The behaviour log, sorted by (user, time).

    A session holds 1 + Poisson(m − 1) behaviours, 1 + Exp(gap) seconds apart; each behaviour's category is
    drawn from the session's π, its item by popularity among the category's items that exist at that time,
    its type from BEHAVIOR_TYPE_PROBS.
    """
    counts = 1 + rng.poisson(config.behaviors_per_session - 1, sessions['user'].size)
    session = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    gaps = 1.0 + np.floor(rng.exponential(config.behavior_gap_seconds, session.size))
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    time = sessions['start'][session] + (elapsed - np.repeat(elapsed[first], counts)).astype(np.int64)
    keep = time < config.horizon_days * SECONDS_PER_DAY
    session, time = session[keep], time[keep]
    category = _sample_rows(interest, session, rng.random(session.size))
    item = _sample_items(world, category, time, rng.random(session.size))
    kind = rng.choice(len(BEHAVIOR_TYPE_PROBS), session.size, p=BEHAVIOR_TYPE_PROBS)
    user = sessions['user'][session]
    order = np.lexsort((time, user))
    return {'user': user[order], 'time': time[order], 'session': session[order], 'item': item[order],
            'type': kind[order].astype(np.int64)}


# ---------------------------------------------------------------------------------------------------------------
# Requests, pages, relevance and labels.


def _make_chunk(config: GeneratorConfig, world: dict, users: dict, rngs: tuple, num_requests: int,
                first_request_id: int) -> Split:
    """All impressions of one chunk of users, ordered by (request_time, request_id, position). ``rngs``: the chunk's
    stream, its searches' stream, its session foci's stream and its outcomes' stream."""
    rng, search_rng, focus_rng, outcome_rng = rngs
    sessions = _make_sessions(config, users, rng)
    interest = _focus_sessions(config, _drift_interests(config, world, users, sessions, rng), focus_rng)
    behaviors = _make_behaviors(config, world, sessions, interest, rng)
    requests = _make_requests(config, users, behaviors, rng, num_requests)
    items = _make_pages(config, world, interest, requests, rng)
    rows = _label_pages(config, world, users, behaviors, interest, requests, items, (rng, outcome_rng),
                        first_request_id)
    rows.update(_search_columns(config, sessions, interest, requests, search_rng, rows['request_id'] - first_request_id))
    rows.update(_page_context_columns(rows))
    rows.update(_unclicked_columns(config, rows))
    return rows


def _make_requests(config: GeneratorConfig, users: dict, behaviors: dict, rng: np.random.Generator,
                   num_requests: int) -> dict:
    """Requests at the times of randomly chosen in-horizon behaviours, sorted by (time, user).

    The history of a request is the behaviour range [lo, hi): the user's last ``history_length`` behaviours
    strictly before the request time. The device is the user's preferred one with ``preferred_device_prob``.
    """
    eligible = np.flatnonzero(behaviors['time'] >= 0)
    if eligible.size < num_requests:
        raise ConfigError('num_impressions', f'asks for {num_requests} requests in a chunk of users that has only '
                          f'{eligible.size} behaviours in the horizon; raise num_users or lower num_impressions')
    chosen = rng.choice(eligible, num_requests, replace=False)
    user, time = behaviors['user'][chosen], behaviors['time'][chosen]
    order = np.lexsort((user, time))
    user, time, chosen = user[order], time[order], chosen[order]
    log_key = behaviors['user'] * _TIME_KEY + behaviors['time']
    hi = np.searchsorted(log_key, user * _TIME_KEY + time, side='left')
    lo = np.maximum(np.searchsorted(behaviors['user'], user, side='left'), hi - config.history_length)
    other = (users['device'][user] + rng.integers(1, NUM_DEVICES, user.size)) % NUM_DEVICES
    preferred = rng.random(user.size) < config.preferred_device_prob
    return {'user': user, 'time': time, 'session': behaviors['session'][chosen], 'lo': lo, 'hi': hi,
            'device': np.where(preferred, users['device'][user], other)}


def _make_pages(config: GeneratorConfig, world: dict, interest: np.ndarray, requests: dict,
                rng: np.random.Generator) -> np.ndarray:
    """``[requests, page_size]`` candidate items (catalogue indices), unordered.

    A slot's category comes from the session's π with probability ``interest_candidate_share``, otherwise from
    the global category share; its item by popularity among existing items. Duplicates within a page are
    redrawn from the global share (a few rounds; a rare leftover duplicate is kept).
    """
    shape = (requests['time'].size, config.page_size)
    time = np.repeat(requests['time'], config.page_size)
    from_interest = rng.random(time.size) < config.interest_candidate_share
    session = np.repeat(requests['session'], config.page_size)
    category = np.where(from_interest, _sample_rows(interest, session, rng.random(time.size)),
                        _sample_global_category(world, rng, time.size))
    items = _sample_items(world, category, time, rng.random(time.size)).reshape(shape)
    for _ in range(_DEDUP_ROUNDS):
        rows, cols = np.nonzero(_later_duplicates(items))
        if rows.size == 0:
            break
        category = _sample_global_category(world, rng, rows.size)
        items[rows, cols] = _sample_items(world, category, requests['time'][rows], rng.random(rows.size))
    return items


_DEDUP_ROUNDS = 5


def _later_duplicates(items: np.ndarray) -> np.ndarray:
    """Mask of entries equal to an earlier entry of the same row (in sorted order)."""
    order = np.argsort(items, axis=1, kind='stable')
    ordered = np.take_along_axis(items, order, axis=1)
    repeated = np.zeros(items.shape, dtype=bool)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    mask = np.zeros(items.shape, dtype=bool)
    np.put_along_axis(mask, order, repeated, axis=1)
    return mask


def _label_pages(config: GeneratorConfig, world: dict, users: dict, behaviors: dict, interest: np.ndarray,
                 requests: dict, items: np.ndarray, rngs: tuple, first_request_id: int) -> Split:
    """Relevance, production-ranker positions, examination and labels of every impression.

    true_relevance = sigmoid(z) (see :func:`_relevance_logit`); the production ranker orders a page by
    z + N(0, ranker_noise²); true_examination = (1 + position)^(−η); click ~ Bernoulli(examination · relevance);
    the funnel after the click, satisfaction, the counterfactual click and the page dwell come from the outcome
    stream (``rngs``: the chunk's stream and its outcomes' stream; :mod:`tfx_pipeline.data.outcomes`).
    """
    rng, outcome_rng = rngs
    n_req, page = items.shape
    z, brand_count = _relevance_logit(config, world, users, behaviors, interest, requests, items)
    order = np.argsort(-(z + rng.normal(0.0, config.ranker_noise, z.shape)), axis=1, kind='stable')
    items, z = np.take_along_axis(items, order, axis=1).ravel(), np.take_along_axis(z, order, axis=1).ravel()
    brand_count = np.take_along_axis(brand_count, order, axis=1).ravel()
    position = np.tile(np.arange(page), n_req)
    request = np.repeat(np.arange(n_req), page)
    user = requests['user'][request]
    examination = (1.0 + position) ** -config.position_decay
    relevance = _sigmoid(z)
    click = rng.random(z.size) < examination * relevance
    affordability = config.conversion_price_weight * (users['x_power'][user] - world['item_x_price'][items])
    outcome = outcomes.outcome_columns(config, z, click, affordability, brand_count,
                                       world['item_satisfaction'][items], outcome_rng)
    request_id = first_request_id + request
    rows = {
        'impression_id': request_id * page + position,
        'request_id': request_id,
        'user_id': users['user_id'][user],
        'age_bucket': users['age_bucket'][user],
        'gender': users['gender'][user],
        'city': users['city'][user],
        'purchase_power': users['purchase_power'][user],
        'item_id': world['item_id'][items],
        'category': world['item_category'][items],
        'brand': world['item_brand'][items],
        'price': world['item_price'][items],
        'request_time': config.start_time + requests['time'][request],
        'hour': (config.start_time + requests['time'][request]) // 3600 % 24,
        'device': requests['device'][request].astype(np.int64),
        'position': position,
        'click': click,
        **outcome,
        'bid': world['item_bid'][items],
        'true_examination': examination,
        'true_relevance': relevance,
        'true_ctr': examination.astype(np.float32) * relevance.astype(np.float32),
    }
    rows = {name: value.astype(np.float32 if name in FLOAT_COLUMNS else np.int64) for name, value in rows.items()}
    rows.update(_history_columns(config, world, behaviors, requests, page))
    return rows


def _relevance_logit(config: GeneratorConfig, world: dict, users: dict, behaviors: dict, interest: np.ndarray,
                     requests: dict, items: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(z, S_brand)``, each ``[request, slot]``: z = b0 + β_h log(1 + S_cat) + β_b log(1 + S_brand) + A'[age, c]
    + β_p x_price x_power + H[hour/4, c] + D[device] + q_item + γ π_u(t)[c].

    S_cat = Σ_j w_type(j) 1[cat_j = c] exp(−(t − t_j)/τ) over the request's written history, S_brand likewise.
    """
    n_req, page = items.shape
    request = np.repeat(np.arange(n_req), page)
    items = items.ravel()
    category, brand = world['item_category'][items], world['item_brand'][items]
    user, time = requests['user'][request], requests['time'][request]
    entry_request = np.repeat(np.arange(n_req), requests['hi'] - requests['lo'])
    entry = ragged_arange(requests['lo'], requests['hi'] - requests['lo'])
    entry_item = behaviors['item'][entry]
    decayed = (np.asarray(_BEHAVIOR_WEIGHTS)[behaviors['type'][entry]]
               * np.exp(-(requests['time'][entry_request] - behaviors['time'][entry])
                        / (config.decay_days * SECONDS_PER_DAY)))
    s_cat = _matched_sum(entry_request, world['item_category'][entry_item], decayed, request, category)
    s_brand = _matched_sum(entry_request, world['item_brand'][entry_item], decayed, request, brand)
    age = users['age_bucket'][user]
    hour_bucket = (config.start_time + time) // 3600 % 24 // (24 // NUM_HOUR_BUCKETS)
    z = (config.relevance_bias
         + config.history_weight * np.log1p(s_cat)
         + config.brand_weight * np.log1p(s_brand)
         + world['age_cross'][age, category]
         + config.price_cross_weight * world['item_x_price'][items] * users['x_power'][user]
         + world['hour_cross'][hour_bucket, category]
         + np.asarray(DEVICE_EFFECT)[requests['device'][request]]
         + world['item_quality'][items]
         + config.interest_weight * interest[requests['session'][request], category])
    return z.reshape(n_req, page), s_brand.reshape(n_req, page)


_BEHAVIOR_WEIGHTS = (1.0, 2.0, 3.0)   # click, cart, buy


def _history_columns(config: GeneratorConfig, world: dict, behaviors: dict, requests: dict, page: int) -> Split:
    """The request's history [lo, hi) repeated for each impression of its page, as Ragged columns."""
    lengths = np.repeat(requests['hi'] - requests['lo'], page).astype(np.int64)
    entry = ragged_arange(np.repeat(requests['lo'], page), lengths)
    item = behaviors['item']
    per_behavior = {
        'hist_item_id': world['item_id'][item],
        'hist_category': world['item_category'][item],
        'hist_brand': world['item_brand'][item],
        'hist_behavior_type': behaviors['type'],
        'hist_time': config.start_time + behaviors['time'],
    }
    return {name: Ragged(values[entry], lengths) for name, values in per_behavior.items()}


# ---------------------------------------------------------------------------------------------------------------
# Searches, page context and unclicked impressions: columns that leave the others and the ground truth unchanged.


def _search_columns(config: GeneratorConfig, sessions: dict, interest: np.ndarray, requests: dict,
                    rng: np.random.Generator, request: np.ndarray) -> Split:
    """``query`` of each impression (its session's query; 0 outside search sessions) and the user's earlier queries
    (``hist_query``, ``hist_query_time``: the last ``query_history_length`` issued strictly before the request).

    A session searches with ``search_session_share``; its query 1 + c · T + term has c ~ π_s, the session's
    interest, and a uniform term of T = ``query_terms_per_category``. The query is thus evidence of π_s, which
    drives the click through z; it is drawn after the click, so it adds no information the ground truth lacks.
    """
    n = sessions['user'].size
    searches = rng.random(n) < config.search_session_share
    category = _sample_rows(interest, np.arange(n), rng.random(n))
    term = rng.integers(0, config.query_terms_per_category, n)
    query = np.where(searches, 1 + category * config.query_terms_per_category + term, 0).astype(np.int64)
    issued = np.flatnonzero(searches)   # sorted by (user, start), as the sessions are
    log_key = sessions['user'][issued] * _TIME_KEY + sessions['start'][issued]
    users, times = requests['user'][request], requests['time'][request]
    hi = np.searchsorted(log_key, users * _TIME_KEY + times, side='left')
    lo = np.maximum(np.searchsorted(sessions['user'][issued], users, side='left'), hi - config.query_history_length)
    entry = issued[ragged_arange(lo, hi - lo)]
    lengths = (hi - lo).astype(np.int64)
    return {'query': query[requests['session'][request]],
            'hist_query': Ragged(query[entry], lengths),
            'hist_query_time': Ragged(config.start_time + sessions['start'][entry], lengths)}


def _page_context_columns(rows: Split) -> Split:
    """DSTN's context ads: the items shown above each impression on its page (positions 0 … p − 1), top first."""
    position = rows['position']
    entry = ragged_arange(np.arange(position.size) - position, position)
    return {f'context_{name}': Ragged(rows[name][entry], position.astype(np.int64))
            for name in ('item_id', 'category', 'brand')}


def _unclicked_columns(config: GeneratorConfig, rows: Split) -> Split:
    """DSTN's unclicked ads: the user's last ``unclicked_history_length`` impressions of earlier requests (strictly
    before the request time) that were not clicked, oldest first, with the time they were shown."""
    shown = np.flatnonzero(rows['click'] == 0)
    shown = shown[np.lexsort((rows['position'][shown], rows['request_time'][shown], rows['user_id'][shown]))]
    user = rows['user_id'][shown]
    hi = np.searchsorted(user * _TIME_KEY + rows['request_time'][shown],
                         rows['user_id'] * _TIME_KEY + rows['request_time'], side='left')
    lo = np.maximum(np.searchsorted(user, rows['user_id'], side='left'), hi - config.unclicked_history_length)
    entry = shown[ragged_arange(lo, hi - lo)]
    lengths = (hi - lo).astype(np.int64)
    return {f'unclicked_{name}': Ragged(rows[source][entry], lengths)
            for name, source in (('item_id', 'item_id'), ('category', 'category'), ('brand', 'brand'),
                                 ('time', 'request_time'))}


# ---------------------------------------------------------------------------------------------------------------
# Splits and metadata.


def _split_by_time(config: GeneratorConfig, rows: Split) -> Dict[str, Split]:
    """Train: the first ``train_fraction`` of the horizon, eval: the next ``eval_fraction``, test: the rest."""
    fractions = np.array([config.train_fraction, config.train_fraction + config.eval_fraction])
    cuts = config.start_time + np.floor(fractions * config.horizon_days * SECONDS_PER_DAY).astype(np.int64)
    bounds = np.r_[0, np.searchsorted(rows['request_time'], cuts, side='left'), rows['request_time'].size]
    return {name: take_rows(rows, bounds[k], bounds[k + 1]) for k, name in enumerate(SPLITS)}


def _sample_negatives(split: Split, rate: float, rng: np.random.Generator) -> Split:
    """The split with every clicked row and each unclicked one kept with probability ``rate``, in order."""
    keep = (split['click'] > 0) | (rng.random(split['click'].size) < rate)
    return _select(split, keep)


def _select(split: Split, keep: np.ndarray) -> Split:
    """The rows of a split where ``keep`` is true (list columns too)."""
    rows = np.flatnonzero(keep)
    selected = {}
    for name, column in split.items():
        if isinstance(column, Ragged):
            starts = column.row_splits[:-1][rows]
            lengths = column.row_lengths[rows]
            selected[name] = Ragged(column.values[ragged_arange(starts, lengths)], lengths)
        else:
            selected[name] = column[rows]
    return selected


def take_rows(split: Split, begin: int, end: int) -> Split:
    """Rows [begin, end) of every column of a split."""
    return {name: column.slice_rows(begin, end) if isinstance(column, Ragged) else column[begin:end]
            for name, column in split.items()}


def _concat(parts: list) -> Split:
    """Row-wise concatenation of splits with the same columns (a single part is returned as it is)."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for name, first in parts[0].items():
        if isinstance(first, Ragged):
            out[name] = Ragged(np.concatenate([p[name].values for p in parts]),
                               np.concatenate([p[name].row_lengths for p in parts]))
        else:
            out[name] = np.concatenate([p[name] for p in parts])
    return out


SUMMARY_COLUMNS = ('click', 'true_ctr', 'true_relevance', 'item_id')


def summary_columns(splits: Dict[str, Split]) -> Dict[str, Split]:
    """The few columns :func:`summarize` needs (plus the history lengths), to keep while streaming chunks."""
    return {name: {**{c: split[c] for c in SUMMARY_COLUMNS},
                   'history_length': split['hist_item_id'].row_lengths} for name, split in splits.items()}


def summarize(config: GeneratorConfig, summaries: list) -> dict:
    """Metadata of a generated log from the :func:`summary_columns` of each of its chunks.

    bayes_auc = AUC(true_ctr, click) on test (bayes_auc_eval on eval); relevance_auc = AUC(true_relevance,
    click) on test; cold_start_item_share_test = share of test impressions whose item no train row shows.
    Undefined values (an empty split, a single class) are None.
    """
    merged = {name: _concat([summary[name] for summary in summaries]) for name in SPLITS}
    test, evaluation = merged['test'], merged['eval']
    return {
        'config': dataclasses.asdict(config),
        'splits': {name: _split_stats(split) for name, split in merged.items()},
        'bayes_auc': _number(auc(test['click'], test['true_ctr'])),
        'bayes_auc_eval': _number(auc(evaluation['click'], evaluation['true_ctr'])),
        'relevance_auc': _number(auc(test['click'], test['true_relevance'])),
        'cold_start_item_share_test': _mean(~np.isin(test['item_id'], merged['train']['item_id'])),
    }


def _split_stats(split: Split) -> dict:
    return {
        'rows': int(split['click'].size),
        'ctr': _mean(split['click']),
        'mean_true_ctr': _mean(split['true_ctr'].astype(np.float64)),
        'empty_history_share': _mean(split['history_length'] == 0),
        'mean_history_length': _mean(split['history_length']),
    }


def _mean(values: np.ndarray) -> Optional[float]:
    return float(values.mean()) if values.size else None


def _number(value: float) -> Optional[float]:
    return None if np.isnan(value) else float(value)


# ---------------------------------------------------------------------------------------------------------------
# Vectorised sampling helpers.

_TIME_KEY = float(2 ** 33)   # > any |time| in seconds: (group, time) pairs sort as group · _TIME_KEY + time


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _dirichlet(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
    """Rows ~ Dir(alpha_row), as normalised Gamma(alpha) draws (floored so that a row never sums to 0)."""
    draws = np.maximum(rng.gamma(alpha), 1e-300)
    return draws / draws.sum(axis=1, keepdims=True)


def ragged_arange(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of start_r, start_r + 1, …, start_r + length_r − 1 over rows r."""
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - offsets, lengths)


def _sample_segments(cum_weight: np.ndarray, lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index k ∈ [lo, hi) with P(k) ∝ w_k, by inverse CDF on cum_weight = (0, w_0, w_0 + w_1, …)."""
    target = cum_weight[lo] + u * (cum_weight[hi] - cum_weight[lo])
    return np.clip(np.searchsorted(cum_weight, target, side='right') - 1, lo, hi - 1)


def _sample_rows(probs: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Column k drawn with P(k) = probs[row, k] for each row index in ``rows``.

    Inverse CDF on one sorted array: row r's cumulative probabilities shifted by r, searched at r + u.
    """
    n, width = probs.shape
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    flat = (cum + np.arange(n)[:, None]).ravel()
    return np.minimum(np.searchsorted(flat, rows + u, side='right') - rows * width, width - 1)


def _sample_global_category(world: dict, rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.choice(world['category_share'].size, size, p=world['category_share'])


def _sample_items(world: dict, category: np.ndarray, time: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Item of ``category`` by popularity among those that exist at ``time`` (first appearance ≤ time); after a
    popularity shift, by the shifted popularity."""
    lo = world['category_bounds'][category]
    hi = np.searchsorted(world['item_appear_key'], category * _TIME_KEY + time, side='right')
    items = _sample_segments(world['item_cum_popularity'], lo, hi, u)
    if 'item_cum_popularity_shifted' in world:
        after = time >= world['popularity_shift_time']
        items = np.where(after, _sample_segments(world['item_cum_popularity_shifted'], lo, hi, u), items)
    return items


def _matched_sum(groups: np.ndarray, keys: np.ndarray, weights: np.ndarray, query_groups: np.ndarray,
                 query_keys: np.ndarray) -> np.ndarray:
    """S_q = Σ_j weights_j · 1[groups_j = query_groups_q ∧ keys_j = query_keys_q], via sorted (group, key) pairs."""
    span = int(max(keys.max(initial=0), query_keys.max(initial=0))) + 1
    pairs, inverse = np.unique(groups * span + keys, return_inverse=True)
    if pairs.size == 0:
        return np.zeros(query_keys.size)
    sums = np.bincount(inverse.ravel(), weights, minlength=pairs.size)
    query = query_groups * span + query_keys
    where = np.minimum(np.searchsorted(pairs, query), pairs.size - 1)
    return np.where(pairs[where] == query, sums[where], 0.0)
