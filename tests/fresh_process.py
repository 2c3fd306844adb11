"""Scores exported SavedModels in a fresh Python process that never imports this project, as TF Serving would
load them: only TensorFlow, ``tf.saved_model.load`` and the ``serving_default`` signature (every output: the
probabilities and a multi-head model's other heads)."""

import json
import os
import subprocess
import sys
import textwrap
from typing import Dict, Sequence

import numpy as np

PROJECT_PACKAGES = ('rec_models', 'feature_spec', 'tfx_pipeline', 'serving')
_SCORER = textwrap.dedent(f'''
    import json, sys
    import tensorflow as tf
    scores = {{}}
    for model_dir, examples in json.load(open(sys.argv[1])).items():
        model = tf.saved_model.load(model_dir)
        batch = tf.constant([bytes.fromhex(h) for h in examples])
        outputs = model.signatures['serving_default'](examples=batch)
        scores[model_dir] = {{name: values.numpy().tolist() for name, values in outputs.items()}}
    leaked = [m for m in sys.modules if m.split('.')[0] in {PROJECT_PACKAGES!r}]
    assert not leaked, leaked
    print(json.dumps(scores))
''')


def score_in_fresh_process(jobs: Dict[str, Sequence[bytes]], workdir: str, outputs: bool = False
                           ) -> Dict[str, np.ndarray]:
    """``{SavedModel dir: serialized tf.Examples}`` → ``{dir: probabilities}`` (with ``outputs``: ``{dir: {output:
    values}}``), all in one fresh process run from ``workdir`` (so that the project is not importable from the
    working directory)."""
    jobs_file = os.path.join(workdir, 'fresh_process_jobs.json')
    with open(jobs_file, 'w') as f:
        json.dump({path: [e.hex() for e in examples] for path, examples in jobs.items()}, f)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    scored = subprocess.run([sys.executable, '-c', _SCORER, jobs_file], cwd=workdir, env=env, capture_output=True,
                            text=True, timeout=900, check=False)
    assert scored.returncode == 0, scored.stderr[-3000:]
    served = json.loads(scored.stdout.strip().splitlines()[-1])
    if outputs:
        return {path: {name: np.array(values) for name, values in scores.items()} for path, scores in served.items()}
    return {path: np.array(scores['probabilities']) for path, scores in served.items()}


_RETRIEVER = textwrap.dedent(f'''
    import json, sys
    import numpy as np
    import tensorflow as tf
    jobs = json.load(open(sys.argv[1]))
    results = {{}}
    for model_dir, job in jobs.items():
        model = tf.saved_model.load(model_dir)
        contexts = tf.constant([bytes.fromhex(h) for h in job['contexts']])
        outputs = model.signatures['retrieve'](context=contexts, k=tf.constant(job['k']))
        results[model_dir] = {{'item_ids': outputs['item_ids'].numpy().astype(str).tolist(),
                               'scores': outputs['scores'].numpy().tolist(),
                               'candidates': [[c.hex() for c in row] for row in outputs['candidates'].numpy()]}}
    leaked = [m for m in sys.modules if m.split('.')[0] in {PROJECT_PACKAGES!r}]
    assert not leaked, leaked
    print(json.dumps(results))
''')


def retrieve_in_fresh_process(jobs: Dict[str, Sequence[bytes]], k: int, workdir: str) -> Dict[str, Dict]:
    """``{SavedModel dir: serialized context examples}`` → ``{dir: {'item_ids': [N, k] str, 'scores': [N, k],
    'candidates': [N, k] hex of the raw item examples}}``
    from each model's ``retrieve`` signature, all in one fresh process that never imports this project."""
    jobs_file = os.path.join(workdir, 'fresh_process_retrievals.json')
    with open(jobs_file, 'w') as f:
        json.dump({path: {'contexts': [e.hex() for e in contexts], 'k': k} for path, contexts in jobs.items()}, f)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    done = subprocess.run([sys.executable, '-c', _RETRIEVER, jobs_file], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    return {path: {name: np.array(values) for name, values in outputs.items()} for path, outputs in served.items()}
