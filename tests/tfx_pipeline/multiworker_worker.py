"""One worker of test_multiworker: ``python multiworker_worker.py JOB.json OUT`` with TF_CONFIG set.

Builds the Trainer's ``fn_args`` (TFX's own FnArgs) from the job file, calls ``trainer.run_fn`` as TFX's
GenericExecutor would, and saves the trained model's variables (``OUT.npz``: ``{key: value}``, keyed as an export
keeps them) and its Keras history (``OUT.json``: ``{metric: [value per epoch]}``). A ``worker`` or ``ps`` task of a
cluster with ``ps`` tasks never gets there: its ``run_fn`` serves until the test kills it.
"""

import json
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=wrong-import-position
from tfx.components.trainer.fn_args_utils import FnArgs  # pylint: disable=wrong-import-position

from rec_models import base  # pylint: disable=wrong-import-position
from tfx_pipeline import trainer  # pylint: disable=wrong-import-position


def main(job_path: str, out: str) -> None:
    with open(job_path) as f:
        job = json.load(f)
    fn_args = FnArgs(train_files=job['train_files'], eval_files=job['eval_files'],
                     transform_output=job['transform_output'], transform_graph_path=job['transform_output'],
                     serving_model_dir=job['serving_model_dir'], model_run_dir=job['model_run_dir'],
                     custom_config=job['custom_config'])
    model = trainer.run_fn(fn_args)
    np.savez(out + '.npz', **{key: variable.numpy() for key, variable in base.variable_keys(model).items()})
    with open(out + '.json', 'w') as f:
        json.dump({name: [float(v) for v in values] for name, values in model.history.history.items()}, f)


if __name__ == '__main__':
    main(*sys.argv[1:])
