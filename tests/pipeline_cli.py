"""Runs the pipeline's command line on a config written for a test, and reads what its Trainer recorded."""

import glob
import json
import os
import subprocess
import sys

import numpy as np

from tfx_pipeline.data.synthetic import ITEMS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, cwd=REPO, timeout=1800):
    """``python -m tfx_pipeline <args>`` in a subprocess; the completed process (stdout and stderr as text)."""
    env = {**os.environ, 'TF_USE_LEGACY_KERAS': '1'}
    return subprocess.run([sys.executable, '-m', 'tfx_pipeline', *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_config(tmp_path, data_dir, name, data_format='tfrecord', auc_floor=0.55, **training):
    """A config running DIN (or ``training['model']``) for 2 epochs on ``data_dir`` into ``tmp_path/runs``, with the
    generator's item feed when the data has one."""
    training = {'model': 'din', 'epochs': 2, 'batch_size': 256, 'learning_rate': 0.002, **training}
    path = tmp_path / f'{name}.yaml'
    data = {'path': str(data_dir), 'format': data_format}
    feed = os.path.join(str(data_dir), data_format, ITEMS)
    if os.path.isdir(feed):
        data['item_feed'] = os.path.join(feed, '*')
    path.write_text(json.dumps({
        'name': name, 'runs_dir': str(tmp_path / 'runs'), 'feature_spec': 'feature_spec/specs/synthetic.yaml',
        'data': data, 'training': training,
        'evaluation': {'auc_floor': auc_floor}}))
    return str(path)


def sample_predictions(run_dir, trainer='Trainer', head='probabilities', model_run='*'):
    """The logged examples and the in-process probabilities of ``head`` (or, with ``head=None``, ``{output:
    values}`` of every served output) a run's Trainer recorded (``sample_predictions.json``; ``model_run``: the
    execution's directory when the Trainer ran more than once)."""
    [sample_file] = glob.glob(os.path.join(str(run_dir), 'pipeline', trainer, 'model_run', model_run,
                                           'sample_predictions.json'))
    with open(sample_file) as f:
        sample = json.load(f)
    examples = [bytes.fromhex(h) for h in sample.pop('examples')]
    if head is None:
        return examples, {name: np.array(values) for name, values in sample.items()}
    return examples, np.array(sample[head])


def sample_retrievals(run_dir, trainer):
    """The logged examples and the in-process top k (``{item_ids, scores}``) a retrieval model's Trainer recorded
    (``sample_retrievals.json``), and k."""
    [sample_file] = glob.glob(os.path.join(str(run_dir), 'pipeline', trainer, 'model_run', '*',
                                           'sample_retrievals.json'))
    with open(sample_file) as f:
        sample = json.load(f)
    examples = [bytes.fromhex(h) for h in sample.pop('examples')]
    k = sample.pop('k')
    return examples, {name: np.array(values) for name, values in sample.items()}, k
