"""Writers of two public-format click files shaped like the public data sets, for measurements that must not be tuned
to the project's own synthetic generator (:mod:`tfx_pipeline.data.synthetic`) and to try the import path (README,
"Your data") without downloading anything: the frappe libFM file of NFM and the Amazon review file of DIN/DIEN.
Neither uses that generator; each has its own small generative story, below.

    python -m tfx_pipeline.data.public_formats frappe --out data/frappe_like.libfm [--rows 288609 --seed 0]
    python -m tfx_pipeline.data.public_formats amazon --out data/amazon_like.txt [--users 8000 --items 6000 --seed 0]

then ``python -m tfx_pipeline.importers libfm --input … --out DIR`` (or ``amazon``). Each command prints one JSON
line (format, path, rows, positive rate, cardinalities, seconds).

frappe (Baltrunas et al., *Frappe: Understanding the Usage and Perception of Mobile App Recommendations
In-The-Wild*, arXiv 1505.03014, 2015; the libFM file released with NFM, He & Chua, SIGIR 2017):

* Shape: libFM lines ``label index:1 …``, labels ``1`` / ``-1``, 10 fields in this order with these cardinalities:
  user 957, item 4082, daytime 7, weekday 7, isweekend 2, homework 3, cost 2, weather 9, country 80, city 233;
  indices are global (field k's values follow field k − 1's: 5,382 indices in all) and every value is 1. Each
  logged app use is a positive line followed by 2 negative lines that pair the same user and context with an item
  drawn uniformly at random (as NFM built the file). The full file has 288,609 lines (96,203 logs); ``--rows``
  writes fewer (whole triples).
* Story: items have a power-law popularity (Zipf, exponent ``POPULARITY_EXPONENT`` over a random ranking), a
  latent taste vector (dimension ``LATENT_DIM``), a price (paid with probability 0.25, and paid apps are used less),
  a preferred daytime profile and a home/work lean. Users have a log-normal activity (every user has at least one
  log when there are as many logs as users), a latent taste vector, a home city (each city is some user's home;
  cities belong to countries, every country having a city) and a home/work routine. A log: a user drawn by activity,
  a weekday (isweekend follows from it: 2 of 7 days), a daytime, a homework value (work more likely on weekdays),
  the weather (9, skewed), the user's home city (a random other city 5% of the time, travelling) and its country,
  and the item drawn with probability ∝ popularity · exp(AFFINITY · user·item + DAYTIME · daytime profile +
  PLACE · home/work lean) among the items of the cost the log has (the cost field is the used app's). So item
  popularity and user × item affinity are most of the signal, context × item a smaller part; user and context
  fields alone say nothing, since the negatives share them.

Amazon (the DIN/DIEN release's ``local_train_splitByUser``; Amazon Electronics 5-core has ~192k users, 63k items,
801 categories and ~8.8 reviews a user; here scaled down, default 8,000 users, 6,000 items, 300 categories):

* Shape: 6 tab-separated columns ``label user item category item_history category_history``, the histories
  oldest first, separated by ``'\\x02'``. For each user, every review after the first is a positive line (the item
  reviewed next, with the user's earlier reviews as the history) followed by a negative line (same user and
  history, an item drawn uniformly at random and its category). Lines are grouped by user in time order, so the
  importer's default split by line order holds out whole users (the tail). Ids are strings (``A…`` users,
  ``B…`` items, ``Cat…`` categories).
* Story: categories have power-law sizes; each item one category, a power-law popularity within the catalogue
  (Zipf exponent ``POPULARITY_EXPONENT``) and a latent vector. A user has 5 + a long-tailed (log-normal) number of
  reviews (at least 5, as in the 5-core data; mean ≈ 8.8, a few users with 100+), a sparse preference over
  categories (Dirichlet with a small concentration: 1–3 main interests), and a latent taste vector. Review t + 1:
  with probability ``STAY`` the category of one of the user's last 3 reviews (a browsing thread), else a category
  drawn from the user's preference; the item within that category drawn ∝ popularity · exp(AFFINITY · user·item),
  never one the user already reviewed. So the history's categories and items tell which targets are likely
  (what DIN's attention looks for), and popularity does the rest.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from tfx_pipeline.importers.amazon import HISTORY_SEPARATOR  # the format's, as the importer reads it

FRAPPE_FIELDS = (('user', 957), ('item', 4082), ('daytime', 7), ('weekday', 7), ('isweekend', 2), ('homework', 3),
                 ('cost', 2), ('weather', 9), ('country', 80), ('city', 233))
FRAPPE_ROWS = 288_609
NEGATIVES_PER_POSITIVE = 2
POPULARITY_EXPONENT = 1.0
LATENT_DIM = 8
AFFINITY = 1.0
DAYTIME = 0.8
PLACE = 0.5
STAY = 0.5


def _zipf(rng, n, exponent):
    """Power-law weights over ``n`` things in a random order, summing to 1."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    rng.shuffle(weights)
    return weights / weights.sum()


def _softmax_sample(rng, logits):
    """One index per row of ``logits`` ``[rows, n]`` drawn from the row's softmax (Gumbel-max)."""
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def frappe(out: str, rows: int = FRAPPE_ROWS, seed: int = 0) -> dict:
    """Writes a frappe-shaped libFM file (module docstring) of ``rows`` lines rounded down to whole triples."""
    rng = np.random.default_rng(seed)
    sizes = dict(FRAPPE_FIELDS)
    offsets = dict(zip(sizes, np.cumsum([0, *sizes.values()])[:-1].tolist()))
    n_users, n_items, n_cities, n_countries = sizes['user'], sizes['item'], sizes['city'], sizes['country']
    logs = rows // (1 + NEGATIVES_PER_POSITIVE)
    if logs < 1:
        raise ValueError(f'rows must be >= {1 + NEGATIVES_PER_POSITIVE}, got {rows}')

    # Items.
    popularity = np.log(_zipf(rng, n_items, POPULARITY_EXPONENT))
    item_taste = rng.normal(size=(n_items, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    paid = rng.random(n_items) < 0.25
    popularity[paid] -= 1.0
    daytime_profile = rng.normal(size=(n_items, sizes['daytime']))
    work_lean = rng.normal(size=n_items)                      # > 0: a work app
    # Users.
    activity = rng.lognormal(0.0, 1.0, n_users)
    user_taste = rng.normal(size=(n_users, LATENT_DIM)) * 1.5
    city_country = np.concatenate([np.arange(n_countries), rng.choice(n_countries, n_cities - n_countries,
                                                                      p=_zipf(rng, n_countries, 1.0))])
    home_city = np.concatenate([rng.permutation(n_cities)[:min(n_users, n_cities)],
                                rng.choice(n_cities, max(n_users - n_cities, 0), p=_zipf(rng, n_cities, 0.8))])
    rng.shuffle(home_city)
    works = rng.random(n_users) < 0.6

    # Logs: users (each at least once when there are enough logs), then context.
    if logs >= n_users:
        user = np.concatenate([np.arange(n_users), rng.choice(n_users, logs - n_users, p=activity / activity.sum())])
    else:
        user = rng.choice(n_users, logs, p=activity / activity.sum())
    rng.shuffle(user)
    weekday = rng.integers(0, 7, logs)
    weekend = (weekday >= 5).astype(np.int64)
    daytime = rng.choice(sizes['daytime'], logs, p=[0.08, 0.16, 0.14, 0.14, 0.2, 0.2, 0.08])
    # homework: 0 unknown, 1 home, 2 work
    at_work = works[user] & (weekend == 0) & (daytime >= 1) & (daytime <= 4) & (rng.random(logs) < 0.7)
    homework = np.where(at_work, 2, np.where(rng.random(logs) < 0.3, 0, 1))
    weather = rng.choice(sizes['weather'], logs, p=_zipf(rng, sizes['weather'], 1.2))
    travelling = rng.random(logs) < 0.05
    city = np.where(travelling, rng.integers(0, n_cities, logs), home_city[user])
    country = city_country[city]
    cost = (rng.random(logs) < paid.mean() * 0.5).astype(np.int64)  # paid apps are used less
    item = np.empty(logs, np.int64)
    place = np.where(homework == 2, 1.0, np.where(homework == 1, -1.0, 0.0))
    for start in range(0, logs, 2048):
        rows_ = slice(start, min(start + 2048, logs))
        logits = (popularity[None, :] + AFFINITY * user_taste[user[rows_]] @ item_taste.T
                  + DAYTIME * daytime_profile[:, daytime[rows_]].T + PLACE * place[rows_, None] * work_lean[None, :])
        logits[paid[None, :] != (cost[rows_, None] == 1)] = -np.inf
        item[rows_] = _softmax_sample(rng, logits)
    negatives = rng.integers(0, n_items, (logs, NEGATIVES_PER_POSITIVE))

    context = {'user': user, 'daytime': daytime, 'weekday': weekday, 'isweekend': weekend, 'homework': homework,
               'cost': cost, 'weather': weather, 'country': country, 'city': city}
    index = {name: values + offsets[name] for name, values in context.items()}
    written = 0
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        for n in range(logs):
            for label, target in ((1, item[n]), *((-1, negative) for negative in negatives[n])):
                indices = [index['user'][n], target + offsets['item'],
                           *(index[name][n] for name, _ in FRAPPE_FIELDS[2:])]
                f.write(f'{label} ' + ' '.join(f'{i}:1' for i in indices) + '\n')
                written += 1
    seen = {'user': user, 'item': np.concatenate([item, negatives.ravel()]), **context}
    return {'format': 'libfm', 'shape': 'frappe', 'path': out, 'rows': written, 'positives': logs,
            'positive_rate': round(logs / written, 6), 'indices': int(sum(sizes.values())),
            'cardinalities': {name: int(np.unique(seen[name]).size) for name, _ in FRAPPE_FIELDS}}


def amazon(out: str, users: int = 8_000, items: int = 6_000, categories: int = 300, seed: int = 0) -> dict:
    """Writes an Amazon-format (DIN/DIEN) file (module docstring)."""
    rng = np.random.default_rng(seed)
    if categories > items:
        raise ValueError('categories must be <= items')
    # Categories with power-law sizes; every category has at least one item.
    category = np.concatenate([np.arange(categories),
                               rng.choice(categories, items - categories, p=_zipf(rng, categories, 1.0))])
    rng.shuffle(category)
    popularity = np.log(_zipf(rng, items, POPULARITY_EXPONENT))
    item_taste = rng.normal(size=(items, LATENT_DIM)) / np.sqrt(LATENT_DIM)
    members = [np.flatnonzero(category == c) for c in range(categories)]
    category_popularity = np.array([np.exp(popularity[m]).sum() for m in members])
    # Review counts: 5 + a long tail (mean about 8.8).
    lengths = 5 + np.minimum(np.floor(rng.lognormal(0.75, 1.2, users)), 300).astype(np.int64)
    item_names = [f'B{i:09d}' for i in range(items)]
    category_names = [f'Cat{c:04d}' for c in range(categories)]
    written = positives = 0
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        for u in range(users):
            preference = rng.dirichlet(np.full(categories, 0.02)) * 0.9 + 0.1 * category_popularity / \
                category_popularity.sum()
            taste = rng.normal(size=LATENT_DIM) * 1.5
            reviewed = []
            for t in range(lengths[u]):
                if reviewed and rng.random() < STAY:
                    c = category[reviewed[-1 - rng.integers(0, min(3, len(reviewed)))]]
                else:
                    c = rng.choice(categories, p=preference)
                candidates = members[c][~np.isin(members[c], reviewed)]
                if candidates.size == 0:
                    candidates = np.setdiff1d(np.arange(items), reviewed)
                logits = popularity[candidates] + AFFINITY * item_taste[candidates] @ taste
                reviewed.append(int(candidates[_softmax_sample(rng, logits[None, :])[0]]))
            name = f'A{u:08d}'
            for t in range(1, len(reviewed)):
                history = (HISTORY_SEPARATOR.join(item_names[i] for i in reviewed[:t]),
                           HISTORY_SEPARATOR.join(category_names[category[i]] for i in reviewed[:t]))
                negative = int(rng.integers(0, items))
                for label, target in ((1, reviewed[t]), (0, negative)):
                    f.write('\t'.join((str(label), name, item_names[target], category_names[category[target]],
                                       *history)) + '\n')
                    written += 1
                positives += 1
    return {'format': 'amazon', 'path': out, 'rows': written, 'positives': positives,
            'positive_rate': round(positives / written, 6), 'users': users, 'items': items,
            'categories': categories, 'mean_reviews_per_user': round(float(lengths.mean()), 3),
            'max_reviews_per_user': int(lengths.max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    formats = parser.add_subparsers(dest='format', required=True)
    sub = formats.add_parser('frappe', help='a frappe-shaped libFM file')
    sub.add_argument('--out', required=True)
    sub.add_argument('--rows', type=int, default=FRAPPE_ROWS, help='lines (default: %(default)s, the full set)')
    sub.add_argument('--seed', type=int, default=0)
    sub = formats.add_parser('amazon', help='an Amazon (DIN/DIEN) format file')
    sub.add_argument('--out', required=True)
    sub.add_argument('--users', type=int, default=8_000)
    sub.add_argument('--items', type=int, default=6_000)
    sub.add_argument('--categories', type=int, default=300)
    sub.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.format == 'frappe':
        result = frappe(args.out, args.rows, args.seed)
    else:
        result = amazon(args.out, args.users, args.items, args.categories, args.seed)
    print(json.dumps({**result, 'seconds': round(time.perf_counter() - start, 2)}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
