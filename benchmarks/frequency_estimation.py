"""The streaming frequency estimation's simulation (Yi et al., *Sampling-Bias-Corrected Neural Modeling for Large
Corpus Item Recommendations*, RecSys 2019, §6.1, Figures 4 and 5): one JSON line, a PNG and a JSON of the curves.

    python benchmarks/frequency_estimation.py                                   # the paper's sizes, about 30 s
    python benchmarks/frequency_estimation.py --steps 4000 --alphas 0.05 --hashes 1 4

M items with q_i ∝ i² (i = 0 … M − 1) for steps 1 … switch, then q_i ∝ (M − 1 − i)²; each step a batch of |B|
distinct items with inclusion probability p_i = |B| q_i; :class:`~rec_models.layers.frequency_estimation.
StreamingFrequencyEstimator` (A at 0, B at 100) sees each batch, and the error 1/(2|B|) Σ_i |p̂_i − p_i| (absolute,
the total variation between q̂ and q) is measured every ``--eval_every`` steps. One run per (α, m), with
H = ``--total_buckets`` // m buckets per hash, so that every m has as many buckets in all (as in the paper's Figure 5).

The paper's sizes (§6.1): M = 1000, |B| = 128, H = 5000, A = 0 and B = 100 at the start, the switch at step 10000,
m ∈ {1, 2, 4} at equal total buckets. Not in its text, chosen here: 20000 steps (the switch halfway), α ∈ {0.01, 0.05,
0.1} (the paper plots three α; 0.01 is the α of its Wikipedia and YouTube models), the simulated items' ids (random
31-bit ids, see :func:`~rec_models.layers.frequency_estimation.simulate`), the sampling design (systematic, so that
p_i = |B| q_i exactly) and the seed.

The JSON line: the sizes, the steps of the checkpoints (before the switch, the first evaluation after it, 1000 steps
after it, the end) and, per (α, m), the error at each; ``frequency_estimation.json`` adds every curve.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rec_models.layers.frequency_estimation import simulate  # noqa: E402  pylint: disable=wrong-import-position

PAPER = ('Yi et al., Sampling-Bias-Corrected Neural Modeling for Large Corpus Item Recommendations, RecSys 2019, '
         '§6.1')


def checkpoints(args, switch):
    """Named steps at which the JSON line reports the error (only those that were evaluated)."""
    named = {'before_switch': switch, 'just_after_switch': switch + args.eval_every,
             'switch_plus_1000': switch + 1000, 'end': args.steps}
    return {name: step for name, step in named.items()
            if 0 < step <= args.steps and (step % args.eval_every == 0 or step in (switch, args.steps))}


def plot(runs, switch, path):
    """Error against step, one panel per α, one curve per m (log scale)."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    alphas = sorted({run['alpha'] for run in runs})
    figure, axes = plt.subplots(1, len(alphas), figsize=(5 * len(alphas), 4), sharey=True, squeeze=False)
    for alpha, axis in zip(alphas, axes[0]):
        for run in (r for r in runs if r['alpha'] == alpha):
            axis.plot(run['steps'], run['errors'], label=f"m = {run['num_hashes']} (H = {run['num_buckets']})")
        axis.axvline(switch, color='grey', linestyle='--', linewidth=1)
        axis.set_yscale('log')
        axis.set_title(f'α = {alpha}')
        axis.set_xlabel('global step')
        axis.grid(alpha=0.3, which='both')
        axis.legend()
    axes[0][0].set_ylabel('error 1/(2|B|) Σ|p̂ − p|')
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num_items', type=int, default=1000, help='M (paper: 1000)')
    parser.add_argument('--batch_size', type=int, default=128, help='|B| (paper: 128)')
    parser.add_argument('--steps', type=int, default=20000, help='steps in all (not in the paper; 2 × its switch)')
    parser.add_argument('--switch_step', type=int, default=None, help='default steps // 2 (paper: 10000)')
    parser.add_argument('--total_buckets', type=int, default=5000, help='m · H (paper: H = 5000 at m = 1)')
    parser.add_argument('--alphas', nargs='+', type=float, default=[0.01, 0.05, 0.1], help='learning rates α')
    parser.add_argument('--hashes', nargs='+', type=int, default=[1, 2, 4], help='m (paper: 1, 2, 4)')
    parser.add_argument('--initial_interval', type=float, default=100.0, help="B's start (paper: 100)")
    parser.add_argument('--eval_every', type=int, default=100)
    parser.add_argument('--item_ids', default='random', choices=('random', 'index'))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out_dir', default=os.path.join('runs', 'bench', 'retrieval'))
    args = parser.parse_args(argv)
    switch = args.steps // 2 if args.switch_step is None else args.switch_step
    named = checkpoints(args, switch)
    start = time.time()
    runs = []
    for alpha in args.alphas:
        for m in args.hashes:
            result = simulate(num_items=args.num_items, batch_size=args.batch_size, num_steps=args.steps,
                              switch_step=switch, num_buckets=args.total_buckets // m, num_hashes=m,
                              learning_rate=alpha, initial_interval=args.initial_interval,
                              eval_every=args.eval_every, seed=args.seed, item_ids=args.item_ids)
            steps = result['steps'].tolist()
            runs.append({'alpha': alpha, 'num_hashes': m, 'num_buckets': args.total_buckets // m, 'steps': steps,
                         'errors': [round(float(e), 5) for e in result['errors']]})
    os.makedirs(args.out_dir, exist_ok=True)
    png = os.path.join(args.out_dir, 'frequency_estimation.png')
    path = os.path.join(args.out_dir, 'frequency_estimation.json')
    plot(runs, switch, png)
    summary = {
        'benchmark': 'frequency_estimation', 'paper': PAPER,
        'sizes': {'num_items': args.num_items, 'batch_size': args.batch_size, 'steps': args.steps,
                  'switch_step': switch, 'total_buckets': args.total_buckets,
                  'initial_interval': args.initial_interval, 'eval_every': args.eval_every,
                  'item_ids': args.item_ids, 'seed': args.seed},
        'error': '1/(2|B|) sum_i |p_hat_i - p_i|, p_i = |B| q_i',
        'checkpoints': named,
        'runs': [{'alpha': r['alpha'], 'num_hashes': r['num_hashes'], 'num_buckets': r['num_buckets'],
                  **{name: r['errors'][r['steps'].index(step)] for name, step in named.items()}} for r in runs],
        'seconds': round(time.time() - start, 1), 'png': png, 'json': path,
    }
    with open(path, 'w', encoding='utf8') as f:
        json.dump({**summary, 'curves': runs}, f)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == '__main__':
    main()
