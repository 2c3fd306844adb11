"""Importer of MovieLens ``ratings.dat`` and ``movies.dat`` into leave-one-out next-movie examples.

``ratings.dat`` of ML-1M (ML-10M's has the same format), with the item side features of ``movies.dat``, for
retrieval.

Formats (``::``-separated, no header):

* ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``, integer ids, a rating (1–5 in ML-1M, half stars in
  ML-10M), a Unix timestamp in seconds. The real file is grouped by user but not in time order within a user.
* ``movies.dat`` (optional): ``MovieID::Title::Genres``, the title ending in the release year (``Toy Story
  (1995)``), the genres ``|``-separated (``Animation|Children's|Comedy``). The real file is latin-1
  (accented letters in titles); it is read as latin-1, and since only the year is taken from the title a UTF-8
  copy imports the same.

Examples: those of :mod:`tfx_pipeline.importers.sequence` (leave-one-out per user: last item test, second-to-last
eval, earlier ones train, each with the user's earlier items as history, the most recent ``max_length`` kept;
position 0 gives no example; users with fewer than 3 ratings go wholly to train), on each user's ratings in
timestamp order (ties in file order). Choices beyond those:

* Every rating is an interaction, whatever its value: the implicit-feedback convention of SASRec and BERT4Rec
  on ML-1M ("we treat the presence of a review or rating as implicit feedback"). ``min_rating`` keeps only the
  ratings ≥ it (e.g. 4 for "liked"); the leave-one-out split is then over the kept ratings.
* ``item_id`` and ``hist_item_id`` are the int64 MovieIDs and share the vocabulary ``item_id`` (embedding 50,
  SASRec's d; ``min_frequency`` default 1); ``user_id`` (int64) is a key and the GAUC group.
* Genres: the spec's item features hold one id each (sequences belong to the behaviour group), so a movie's
  genre list cannot be a bag of ids. The item feature ``genre`` is the *first listed* genre, and ``hist_genre``
  that of each history movie, sharing the vocabulary ``genre`` (18 genres in ML-1M). ML-1M lists the genres in
  alphabetical order, so the first is the alphabetically first, not the "main" one (``Action|Adventure|…`` →
  ``Action``); the whole list as one token (a few hundred combinations) was the alternative, left aside as it
  shares nothing between ``Comedy`` and ``Comedy|Romance``. Whitespace in a genre becomes ``_`` (the vocabulary
  file is ``<count> <token>``); no genre (empty or ML-10M's ``(no genres listed)``) is ``MISSING_GENRE``.
* ``year`` / ``hist_year``: the release year from the title's trailing ``(YYYY)``, an int64 categorical with its
  own vocabulary ``year``; ``MISSING_YEAR`` (0) when the title has none.
* A rated movie that ``movies.dat`` does not list gets ``MISSING_GENRE`` and ``MISSING_YEAR`` (counted in the
  metadata as ``unlisted_movies``). Without ``movies.dat`` there are no genre and year columns.
* ``request_time``: the target rating's timestamp (kind ``timestamp``, no transform: the reference of the time
  gaps); ``hist_time``: the history's timestamps, which become ``hist_time_gap``, ATRank's log2 buckets of
  request_time − hist_time (the ``time_gap`` transform, as the synthetic spec's ``hist_time_gap``) with 28 buckets:
  the last opens at 2^26 s ≈ 2.1 years (ML-1M's ratings span 2000 – 2003); the synthetic spec's 24 would
  stop telling gaps apart at 48 days.
* ``behavior.max_length`` default 200: SASRec's and BERT4Rec's setting for ML-1M, whose users have 165 ratings on
  average, so the eval and test examples are those the papers evaluate. The cost is the per-example
  layout: each row carries its own history, about 17 bytes a step with the side features, so up to 3.4 kB a row
  at 200 steps (ML-1M: a few GB of TFRecords, under 1 GB at ``max_length=50``; the import itself writes about
  20,000 rows a second on one core).
* ``click`` = 1 on every row (positives only, as in :mod:`~tfx_pipeline.importers.sequence`).

Passes: the first checks every line of both files and keeps each kept rating as four integers (a user's ratings
must be sorted by time, which needs them all: 32 bytes a rating, ≈ 32 MB for ML-1M); the second writes the
examples from them, user by user (users in increasing id, each user's examples in time order).
"""

import re
from typing import Dict, Optional, Tuple

import numpy as np

from tfx_pipeline.importers import common
from tfx_pipeline.importers import sequence

LABEL = 'click'
RATING_FIELDS = ('UserID', 'MovieID', 'Rating', 'Timestamp')
MOVIE_FIELDS = ('MovieID', 'Title', 'Genres')
SEPARATOR = '::'
GENRE_SEPARATOR = '|'
MISSING_GENRE = '__missing__'
MISSING_YEAR = 0
NO_GENRES = '(no genres listed)'
MOVIES_ENCODING = 'latin-1'
DEFAULT_MAX_LENGTH = 200
DEFAULT_MIN_FREQUENCY = 1
TIME_GAP_BUCKETS = 28
SIDE_EMBEDDING_DIM = 8
FORMAT = 'movielens'
_YEAR = re.compile(r'\((\d{4})\)\s*$')


def columns(with_movies: bool) -> Dict[str, str]:
    """Column name → dtype of the written examples."""
    names = {LABEL: 'int64', 'user_id': 'int64', 'item_id': 'int64'}
    if with_movies:
        names.update(genre='string', year='int64')
    names.update(request_time='int64', hist_item_id='int64')
    if with_movies:
        names.update(hist_genre='string', hist_year='int64')
    names['hist_time'] = 'int64'
    return names


def _fields(path: str, number: int, line: str, names: Tuple[str, ...]):
    fields = line.split(SEPARATOR)
    if len(fields) != len(names):
        hint = f' (no {SEPARATOR!r} in the line)' if SEPARATOR not in line else ''
        raise common.InputError(path, number, None, f'expected {len(names)} {SEPARATOR!r}-separated fields '
                                                    f'({SEPARATOR.join(names)}), got {len(fields)}{hint}')
    return fields


def parse_rating(path: str, number: int, line: str) -> Tuple[int, int, float, int]:
    """One ``ratings.dat`` line → ``(user, movie, rating, timestamp)``.

    Raises:
        common.InputError: not 4 ``::``-separated fields, a non-integer id or timestamp, or a rating that is not a
            finite number.
    """
    user_text, movie_text, rating_text, time_text = _fields(path, number, line, RATING_FIELDS)
    user = common.parse_int64(path, number, 'UserID', user_text)
    movie = common.parse_int64(path, number, 'MovieID', movie_text)
    rating = common.parse_float32(path, number, 'Rating', rating_text)
    return user, movie, rating, common.parse_int64(path, number, 'Timestamp', time_text)


def parse_movie(path: str, number: int, line: str) -> Tuple[int, str, int]:
    """One ``movies.dat`` line → ``(movie, genre, year)``: the first listed genre and the title's year (module
    docstring).

    Raises:
        common.InputError: not 3 ``::``-separated fields or a non-integer MovieID.
    """
    movie_text, title, genres = _fields(path, number, line, MOVIE_FIELDS)
    movie = common.parse_int64(path, number, 'MovieID', movie_text)
    listed = [g.strip() for g in genres.split(GENRE_SEPARATOR) if g.strip() and g.strip() != NO_GENRES]
    genre = re.sub(r'\s+', '_', listed[0]) if listed else MISSING_GENRE
    year = _YEAR.search(title)
    return movie, genre, int(year.group(1)) if year else MISSING_YEAR


def read_movies(path: str) -> Dict[int, Tuple[str, int]]:
    """``{movie: (genre, year)}`` of a ``movies.dat``.

    Raises:
        common.InputError: a malformed line, or a MovieID listed twice.
    """
    movies = {}
    for number, line in common.open_lines(path, MOVIES_ENCODING):
        movie, genre, year = parse_movie(path, number, line)
        if movie in movies:
            raise common.InputError(path, number, 'MovieID', f'movie {movie} is listed twice')
        movies[movie] = (genre, year)
    return movies


def read_ratings(path: str, min_rating: Optional[float]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The first pass over ``ratings.dat``: ``(users, movies, timestamps, lines)``, the kept ratings in file order
    and the number of ratings read.

    Raises:
        common.InputError: a malformed line.
    """
    users, movies, timestamps = [], [], []
    lines = 0
    for number, line in common.open_lines(path):
        user, movie, rating, timestamp = parse_rating(path, number, line)
        lines += 1
        if min_rating is None or rating >= min_rating:
            users.append(user)
            movies.append(movie)
            timestamps.append(timestamp)
    return (np.array(users, np.int64), np.array(movies, np.int64), np.array(timestamps, np.int64), lines)


def feature_spec(min_frequency: int, max_length: int, with_movies: bool) -> dict:
    """The feature spec (YAML structure) of the imported columns."""
    def vocabulary(name):
        return {'type': 'vocabulary', 'vocabulary': name}

    spec_columns = {
        'user_id': {'kind': 'key'},
        'item_id': {'kind': 'categorical', 'group': 'item', 'transform': vocabulary('item_id')},
    }
    vocabularies = {'item_id': sequence.vocabulary_options(min_frequency, sequence.EMBEDDING_DIM)}
    if with_movies:
        spec_columns['genre'] = {'kind': 'categorical', 'dtype': 'string', 'group': 'item',
                                 'transform': vocabulary('genre')}
        spec_columns['year'] = {'kind': 'categorical', 'group': 'item', 'transform': vocabulary('year')}
        vocabularies['genre'] = {'num_oov_buckets': 1, 'embedding_dim': SIDE_EMBEDDING_DIM}
        vocabularies['year'] = {'num_oov_buckets': 1, 'embedding_dim': SIDE_EMBEDDING_DIM}
    spec_columns['request_time'] = {'kind': 'timestamp'}
    spec_columns['hist_item_id'] = {'kind': 'id_sequence', 'group': 'behavior', 'transform': vocabulary('item_id')}
    if with_movies:
        spec_columns['hist_genre'] = {'kind': 'id_sequence', 'dtype': 'string', 'group': 'behavior',
                                      'transform': vocabulary('genre')}
        spec_columns['hist_year'] = {'kind': 'id_sequence', 'group': 'behavior', 'transform': vocabulary('year')}
    spec_columns['hist_time_gap'] = {
        'source': 'hist_time', 'kind': 'timestamp', 'sequence': True, 'group': 'behavior',
        'transform': {'type': 'time_gap', 'reference': 'request_time', 'num_buckets': TIME_GAP_BUCKETS},
        'embedding_dim': SIDE_EMBEDDING_DIM}
    spec_columns[LABEL] = {'kind': 'label'}
    side = ' with genre and release year' if with_movies else ''
    return {'name': 'movielens', 'description': f'Leave-one-out next-movie examples of MovieLens ratings: the target '
                                                f'movie{side}; the user\'s earlier movies{side}, and their time '
                                                'gaps.',
            'gauc_group': 'user_id', 'behavior': {'max_length': max_length, 'length_feature': 'hist_length'},
            'vocabularies': vocabularies, 'columns': spec_columns}


def import_file(path: str, out_dir: str, movies: Optional[str] = None, max_length: int = DEFAULT_MAX_LENGTH,
                min_frequency: int = DEFAULT_MIN_FREQUENCY, min_rating: Optional[float] = None) -> dict:
    """Imports a MovieLens ``ratings.dat`` (and ``movies.dat``) into ``out_dir`` (layout in
    :mod:`tfx_pipeline.importers.common`).

    Returns:
        The metadata written to ``metadata.json``.

    Raises:
        common.InputError: a malformed line of either file (nothing is written then).
        ValueError: a split would be empty, or a bad option (nothing is written then).
    """
    if min_frequency < 1 or max_length < 1:
        raise ValueError(f'min_frequency and max_length must be >= 1, got {min_frequency} and {max_length}')
    listed = read_movies(movies) if movies is not None else None
    users, rated, timestamps, lines = read_ratings(path, min_rating)
    order = np.lexsort((np.arange(len(users)), timestamps, users))  # by user, then time, then line
    users, rated, timestamps = users[order], rated[order], timestamps[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(users)].astype(np.int64)
    counts = (ends - starts).tolist()
    rows = sequence.split_rows(counts, path)
    with_movies = listed is not None
    dtypes = columns(with_movies)
    with common.StagedOutput(out_dir) as out:
        common.write_spec(out.stage, f'Feature spec of {path}, written by tfx_pipeline.importers.movielens '
                          '(choices in its docstring).', feature_spec(min_frequency, max_length, with_movies))
        encoder = sequence.RecordEncoder(dtypes)
        element = sequence.RecordEncoder.element
        writer = sequence.RecordWriter(out.stage, dtypes, LABEL)
        label = element('int64', 1)
        cache: Dict[int, tuple] = {}               # movie → its encoded elements (item, genre, year)
        unlisted = set()
        for start, end in zip(starts.tolist(), ends.tolist()):
            steps = []
            for movie in rated[start:end].tolist():
                encoded = cache.get(movie)
                if encoded is None:
                    encoded = (element('int64', movie),)
                    if with_movies:
                        if movie not in listed:
                            unlisted.add(movie)
                        genre, year = listed.get(movie, (MISSING_GENRE, MISSING_YEAR))
                        encoded += (element('string', genre), element('int64', year))
                    cache[movie] = encoded
                steps.append(encoded)
            times = [element('int64', t) for t in timestamps[start:end].tolist()]
            user = element('int64', int(users[start]))
            count = end - start
            for k in range(1, count):
                lo = max(0, k - max_length)
                history = steps[lo:k]
                values = [label, user, *steps[k], times[k]]   # the order of columns(): item features, request_time,
                values += [b''.join(step[c] for step in history) for c in range(len(steps[k]))]   # their histories,
                values.append(b''.join(times[lo:k]))                                               # hist_time
                writer.write_record(sequence.example_split(k, count), encoder.encode(values), 1)
        splits = writer.close()
        assert {name: splits[name]['rows'] for name in common.SPLITS} == rows, (splits, rows)
        statistics = sequence.user_statistics(dict(enumerate(counts)), max_length)
        return common.write_metadata(out.stage, {
            'format': FORMAT, 'source': str(path), 'movies': None if movies is None else str(movies),
            'feature_spec': out.path(common.SPEC_FILE), 'rows': sum(rows.values()), 'splits': splits, 'ratings': lines,
            'interactions': len(users), 'filtered_ratings': lines - len(users), 'min_rating': min_rating,
            'items': len(cache), 'movies_listed': None if listed is None else len(listed),
            'unlisted_movies': None if listed is None else len(unlisted), **statistics, 'max_length': max_length,
            'min_frequency': min_frequency, 'min_items': sequence.MIN_ITEMS, 'time_gap_buckets': TIME_GAP_BUCKETS,
            'choices': {**sequence.choices(),
                        'interactions': 'every rating' + (f' >= {min_rating}' if min_rating is not None else '') +
                                        ' (implicit feedback), in timestamp order per user, ties in file order',
                        'genre': 'the first listed genre (ML-1M lists them alphabetically), hist_genre shares '
                                 'vocabulary genre' if with_movies else 'no movies.dat: no genre',
                        'year': 'release year from the title\'s "(YYYY)", 0 if none' if with_movies else
                                'no movies.dat: no year',
                        'time': 'request_time = the target\'s timestamp; hist_time_gap = log2 buckets of '
                                'request_time - hist_time'}})

