"""DIN and DIEN here against DeepCTR 0.9.4's implementations of the same models, in one run, on the same data at the
same sizes (batch 256, history 50, embedding 18), alternating the two over several repetitions; prints one JSON line
(the median speed ratio per model, its range, both AUCs, every run) and, on stderr, a readable table.

    make bench_deepctr        # DeepCTR in its own virtual environment (.venv-deepctr), never the project's

    python benchmarks/deepctr_compare.py --preset default --workdir /tmp/bench --repeats 3 \
        --deepctr_python .venv-deepctr/bin/python

``--history_mean 12`` cuts every history (train and test, both implementations alike) to its last min(length, g)
behaviours, g geometric with mean 12: the long-tailed lengths of real logs, where the default data's are mostly full
(mean 43.5 of 50). Our DIN computes its activation unit at the valid steps only; DeepCTR's at all 50.

The two implementations alternate, each run in its own process (ours, DeepCTR, ours, DeepCTR, …: ``--repeats``
pairs); each run's figures go to stderr as it ends, then a table; stdout gets one JSON line: per model the median
speed ratio of the pairs and its range, the median examples/s and test AUC of each side, and every run. A single pair moves with the machine's load (0.79× and 1.19× on two days);
the median of alternating pairs is the figure to quote.

Both implementations read the same transformed features of the default spec (its Transform output), held in memory
as NumPy arrays and fed by Keras' array adapter, so the input pipeline is the same: the user profile (age bucket,
gender, city, purchase power), the candidate (item, category, brand, price), the context (hour, device) and the
behaviour sequences of item, category and brand, every embedding 18 wide. Both get the same towers (200-80, Dice),
the same attention MLP for DIN (80-40), dropout 0.2, Adam at 0.002, ten warm-up batches (graph building and
tracing, not timed) then one timed epoch over the training split; the test AUC is the AUC on the test split. DIEN: AUGRU with the auxiliary loss (α = 1) in both; DeepCTR samples its negatives
from a ``neg_hist_*`` input, which gets the behaviours of the previous example of the batch (our sampling). What
differs is each library's own: ours has the mini-batch-aware L2 (DeepCTR: L2 1e-6 on the embeddings), DeepCTR's
DIEN attention is its activation unit (64-16) where ours is the paper's bilinear a_t = softmax(h_t W e_a).

DeepCTR 0.9.4 was written for TensorFlow 1's graph mode; on TensorFlow 2.16 its DIEN needs graph mode and a few
TF1 names that later versions removed (``array_ops.stack``, ``control_flow_ops.Assert``/``while_loop``/``cond``,
``nest.is_sequence``),
which :func:`_deepctr_compat` restores as aliases of their public equivalents. DeepCTR therefore runs in a
subprocess with eager execution off, both of its models in it; ours run eagerly with ``tf.function``, as they
train in the pipeline.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=wrong-import-position

BATCH_SIZE, EMBEDDING_DIM, LEARNING_RATE, DROPOUT = 256, 18, 0.002, 0.2
HIDDEN_UNITS, ATTENTION_UNITS = (200, 80), (80, 40)
CATEGORICAL = ('age_bucket', 'gender', 'city', 'item_id', 'category', 'brand', 'hour', 'device')
NUMERIC = ('purchase_power', 'price')
TARGETS = ('item_id', 'category', 'brand')                        # hist_<target> is its behaviour sequence
MODELS = ('din', 'dien')
WARMUP_BATCHES = 10


def load_arrays(workdir, preset):
    """``{split: {feature: array}}`` of the transformed train and test splits, written to ``workdir/arrays.npz``
    once (both implementations read that file)."""
    path = os.path.join(workdir, f'arrays-{preset}.npz')
    if not os.path.exists(path):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from tfx_pipeline import data, experiment  # pylint: disable=import-outside-toplevel
        prepared = experiment.prepare(dataclasses.replace(data.PRESETS[preset], seed=0), workdir)
        spec = prepared.tft_output.transformed_feature_spec()
        names = CATEGORICAL + NUMERIC + tuple(f'hist_{t}' for t in TARGETS) + (
            prepared.spec.behavior.length_feature, prepared.spec.labels[0])
        arrays = {}
        for split in ('train', 'test'):
            records = tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(prepared.transformed[split])),
                                              compression_type='GZIP').batch(8192).map(
                lambda x: tf.io.parse_example(x, {n: spec[n] for n in names}))
            parts = list(records.as_numpy_iterator())
            for name in names:
                arrays[f'{split}/{name}'] = np.concatenate([p[name] for p in parts])
        from feature_spec import resolve  # pylint: disable=import-outside-toplevel
        inputs = resolve.model_inputs_from(prepared.spec, prepared.tft_output)
        arrays['vocab_sizes'] = np.array([inputs[n].vocab_size
                                          for n in CATEGORICAL + tuple(f'hist_{t}' for t in TARGETS)])
        arrays['length_feature'] = np.array(prepared.spec.behavior.length_feature)
        arrays['label'] = np.array(prepared.spec.labels[0])
        np.savez(path, **arrays)
    return path


def _split(arrays, split):
    return {k.split('/', 1)[1]: v for k, v in arrays.items() if k.startswith(f'{split}/')}


def _auc(labels, scores):
    """ROC AUC by the rank-sum formula, ties averaged (computed here: the DeepCTR process cannot import the
    project, which needs Keras 2 before DeepCTR's graph mode)."""
    from scipy.stats import rankdata  # pylint: disable=import-outside-toplevel
    labels = np.asarray(labels).reshape(-1) > 0
    ranks = rankdata(np.asarray(scores).reshape(-1))
    positives = labels.sum()
    return (ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * (labels.size - positives))


def _timed_fit(model, features, labels):
    """Examples per second of one epoch, after ``WARMUP_BATCHES`` batches that build and trace the graph."""
    first = WARMUP_BATCHES * BATCH_SIZE
    head = (lambda x: {k: v[:first] for k, v in x.items()} if isinstance(x, dict) else x[:first])
    model.fit(head(features), head(labels), batch_size=BATCH_SIZE, epochs=1, verbose=0)
    rows = len(next(iter(features.values())))
    start = time.perf_counter()
    model.fit(features, labels, batch_size=BATCH_SIZE, epochs=1, verbose=0, shuffle=True)
    return rows / (time.perf_counter() - start)


def read_arrays(path, history_mean=None):
    """The arrays of :func:`load_arrays`; with ``history_mean``, every history cut to its last min(length, g) steps
    (g geometric with that mean, seed 0, the same cut for both implementations): real users' histories are mostly
    short, the default data's are mostly full (mean 43.5 of 50)."""
    arrays = dict(np.load(path))
    if history_mean:
        rng = np.random.default_rng(0)
        length = str(arrays['length_feature'])
        for split in ('train', 'test'):
            lengths = arrays[f'{split}/{length}']
            cut = np.minimum(lengths, rng.geometric(1.0 / history_mean, lengths.shape))
            steps = arrays[f'{split}/hist_{TARGETS[0]}'].shape[1]
            # step j of the cut history is step length − cut + j of the full one: its last `cut` behaviours
            source = np.minimum((lengths - cut)[:, None] + np.arange(steps)[None], steps - 1)
            for target in TARGETS:
                history = arrays[f'{split}/hist_{target}']
                kept = np.take_along_axis(history, source, axis=1)
                kept[np.arange(steps)[None] >= cut[:, None]] = 0
                arrays[f'{split}/hist_{target}'] = kept
            arrays[f'{split}/{length}'] = cut.astype(lengths.dtype)
    return arrays


def our_inputs(arrays):
    """``(ModelInputs, train split)``: the spec's inputs restricted to the compared features, for our models."""
    from feature_spec.model_inputs import InputField, ModelInputs  # pylint: disable=import-outside-toplevel
    length, label = str(arrays['length_feature']), str(arrays['label'])
    train = _split(arrays, 'train')
    sizes = dict(zip(CATEGORICAL + tuple(f'hist_{t}' for t in TARGETS), arrays['vocab_sizes']))
    groups = {'age_bucket': 'user', 'gender': 'user', 'city': 'user', 'item_id': 'item', 'category': 'item',
              'brand': 'item', 'hour': 'context', 'device': 'context'}
    fields = [InputField(n, 'categorical', groups[n], table=n, vocab_size=int(sizes[n]),
                         embedding_dim=EMBEDDING_DIM) for n in CATEGORICAL]
    fields += [InputField('purchase_power', 'numeric', 'user'), InputField('price', 'numeric', 'item')]
    fields += [InputField(f'hist_{t}', 'sequence', 'behavior', table=t, vocab_size=int(sizes[t]),
                          embedding_dim=EMBEDDING_DIM, max_length=train[f'hist_{t}'].shape[1], query=t)
               for t in TARGETS]
    return ModelInputs(fields=tuple(fields), sequence_length=length, labels=(label,)), train


def run_ours(path, history_mean=None):
    """DIN and DIEN of this package, built from the spec's inputs restricted to the compared features."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rec_models import registry  # pylint: disable=import-outside-toplevel
    arrays = read_arrays(path, history_mean)
    inputs, train = our_inputs(arrays)
    label, test = inputs.label, _split(arrays, 'test')
    rows = []
    for name in MODELS:
        tf.keras.utils.set_random_seed(0)
        model = registry.build(name, inputs, {'hidden_units': HIDDEN_UNITS, 'dropout': DROPOUT})
        model.compile(optimizer=tf.keras.optimizers.Adam(LEARNING_RATE))
        features = {k: v for k, v in train.items() if k != label}
        speed = _timed_fit(model, features, {label: train[label].astype(np.float32)})
        scores = model.predict({k: v for k, v in test.items() if k != label}, batch_size=4096,
                               verbose=0)['probabilities']
        rows.append(_row('ours', name, speed, _auc(test[label], scores), model))
    return rows


def _deepctr_compat(tf):
    """TF1 names DeepCTR 0.9.4's DIEN uses and TensorFlow 2.16 no longer has, as aliases of the public ones."""
    from tensorflow.python.ops import array_ops, control_flow_ops  # pylint: disable=import-outside-toplevel
    from tensorflow.python.util import nest  # pylint: disable=import-outside-toplevel
    for module, name, value in ((array_ops, 'stack', tf.stack), (control_flow_ops, 'Assert', tf.debugging.Assert),
                                (control_flow_ops, 'while_loop', tf.while_loop), (control_flow_ops, 'cond', tf.cond),
                                (nest, 'is_sequence', nest.is_nested)):
        if not hasattr(module, name):
            setattr(module, name, value)


def run_deepctr(path, history_mean=None):
    """DeepCTR 0.9.4's DIN and DIEN on the same arrays (graph mode; see the module docstring)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.compat.v1.disable_eager_execution()
    _deepctr_compat(tf)
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat  # pylint: disable=import-outside-toplevel
    from deepctr.models import DIEN, DIN  # pylint: disable=import-outside-toplevel
    arrays = read_arrays(path, history_mean)
    length, label = str(arrays['length_feature']), str(arrays['label'])
    train, test = _split(arrays, 'train'), _split(arrays, 'test')
    steps = train['hist_item_id'].shape[1]
    sizes = dict(zip(CATEGORICAL + tuple(f'hist_{t}' for t in TARGETS), arrays['vocab_sizes']))
    sparse = [SparseFeat(n, int(sizes[n]), EMBEDDING_DIM) for n in CATEGORICAL]
    dense = [DenseFeat(n, 1) for n in NUMERIC]
    rows = []
    for name in MODELS:
        tf.compat.v1.reset_default_graph()
        tf.keras.utils.set_random_seed(0)
        length_name = 'seq_length' if name == 'dien' else length   # DeepCTR's DIEN reads its length by this name
        prefixes = ('hist_', 'neg_hist_') if name == 'dien' else ('hist_',)
        sequences = [VarLenSparseFeat(SparseFeat(f'{p}{t}', int(sizes[t]), EMBEDDING_DIM, embedding_name=t),
                                      maxlen=steps, length_name=length_name) for p in prefixes for t in TARGETS]
        if name == 'din':
            model = DIN(sparse + dense + sequences, list(TARGETS), dnn_hidden_units=HIDDEN_UNITS,
                        dnn_activation='dice', att_hidden_size=ATTENTION_UNITS, dnn_dropout=DROPOUT)
        else:
            model = DIEN(sparse + dense + sequences, list(TARGETS), gru_type='AUGRU', use_negsampling=True,
                         alpha=1.0, dnn_hidden_units=HIDDEN_UNITS, dnn_activation='dice', dnn_dropout=DROPOUT)
        model.compile(tf.keras.optimizers.legacy.Adam(LEARNING_RATE), 'binary_crossentropy')

        def inputs(split):
            features = {k: v for k, v in split.items() if k not in (label, length)}
            features[length_name] = split[length]
            if name == 'dien':   # negatives: the previous example's behaviours (rolled by one row)
                features.update({f'neg_hist_{t}': np.roll(split[f'hist_{t}'], 1, axis=0) for t in TARGETS})
            return features

        speed = _timed_fit(model, inputs(train), train[label].astype(np.float32))
        scores = model.predict(inputs(test), batch_size=4096, verbose=0).reshape(-1)
        rows.append(_row('deepctr-0.9.4', name, speed, _auc(test[label], scores), model))
    return rows


def _row(implementation, model_name, speed, test_auc, model):
    return {'implementation': implementation, 'model': model_name, 'examples_per_s': round(speed, 1),
            'test_auc': round(float(test_auc), 5),
            'params': int(sum(np.prod(v.shape) for v in model.trainable_weights)), 'batch_size': BATCH_SIZE,
            'embedding_dim': EMBEDDING_DIM, 'epochs': 1}


def _part(part, args):
    """One implementation's rows, from its own process (DeepCTR's graph mode is process-wide; DeepCTR runs on the
    python of its own virtual environment)."""
    python = args.deepctr_python if part == 'deepctr' else sys.executable
    result = subprocess.run([python, os.path.abspath(__file__), '--preset', args.preset, '--workdir', args.workdir,
                             '--only', part, '--history_mean', str(args.history_mean)],
                            capture_output=True, text=True, check=False)
    rows = [json.loads(line[4:]) for line in result.stdout.splitlines() if line.startswith('ROW ')]
    if result.returncode or not rows:
        raise SystemExit(f'the {part} part failed:\n{result.stderr[-3000:]}')
    return rows


def ratios(rows):
    """``{model: [ours / DeepCTR examples/s of each repetition]}``, pairing the two runs of one repetition."""
    by_repeat = {}
    for row in rows:
        by_repeat.setdefault((row['repeat'], row['model']), {})[row['implementation'] == 'ours'] = row
    found = {}
    for (_, model), pair in sorted(by_repeat.items()):
        if len(pair) == 2:
            found.setdefault(model, []).append(pair[True]['examples_per_s'] / pair[False]['examples_per_s'])
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='default')
    parser.add_argument('--workdir', default=os.path.join('runs', 'bench'))
    parser.add_argument('--repeats', type=int, default=3,
                        help='repetitions, alternating ours and DeepCTR (A B A B …)')
    parser.add_argument('--deepctr_python', default=sys.executable,
                        help='the python of the environment DeepCTR is installed in (make bench_deepctr: its own)')
    parser.add_argument('--history_mean', type=float, default=0,
                        help='cut each history to its last min(length, g) steps, g geometric with this mean (0: off)')
    parser.add_argument('--only', choices=('ours', 'deepctr'), help=argparse.SUPPRESS)   # the subprocess' part
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    path = load_arrays(args.workdir, args.preset)
    if args.only:
        rows = (run_ours if args.only == 'ours' else run_deepctr)(path, args.history_mean)
        for row in rows:
            print('ROW ' + json.dumps(row), flush=True)
        return
    rows = []
    for repeat in range(args.repeats):   # A B A B …: a load that comes and goes touches both sides alike
        for part in ('ours', 'deepctr'):
            for row in _part(part, args):
                rows.append({**row, 'repeat': repeat + 1})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    found = ratios(rows)
    print('| model | ours examples/s (median) | DeepCTR examples/s (median) | speed ratio: median (range) '
          '| ours test AUC | DeepCTR test AUC |', file=sys.stderr)
    print('|---|---|---|---|---|---|', file=sys.stderr)
    summary = {}
    for model, values in found.items():
        ours, theirs = (_median(rows, model, impl) for impl in (True, False))
        summary[model] = {'repeats': len(values), 'median_speed_ratio': round(float(np.median(values)), 3),
                          'min_speed_ratio': round(min(values), 3), 'max_speed_ratio': round(max(values), 3),
                          'ours_examples_per_s': ours['examples_per_s'],
                          'deepctr_examples_per_s': theirs['examples_per_s'],
                          'ours_test_auc': ours['test_auc'], 'deepctr_test_auc': theirs['test_auc']}
        print(f"| {model} | {ours['examples_per_s']:,.0f} | {theirs['examples_per_s']:,.0f} | {np.median(values):.2f} "
              f"({min(values):.2f}–{max(values):.2f}) | {ours['test_auc']:.4f} | {theirs['test_auc']:.4f} |",
              file=sys.stderr)
    print(json.dumps({'benchmark': 'deepctr_compare', 'preset': args.preset, 'history_mean': args.history_mean,
                      'batch_size': BATCH_SIZE,
                      'embedding_dim': EMBEDDING_DIM, 'models': summary, 'runs': rows}))

def _median(rows, model, ours):
    """The median examples/s and test AUC of one implementation's runs of ``model``."""
    runs = [r for r in rows if r['model'] == model and (r['implementation'] == 'ours') == ours]
    return {key: round(float(np.median([r[key] for r in runs])), 5) for key in ('examples_per_s', 'test_auc')}

if __name__ == '__main__':
    main()
