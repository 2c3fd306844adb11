"""Every package guarantees Keras 2 behind tf.keras, or says what to set when TensorFlow already chose Keras 3."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code):
    env = {k: v for k, v in os.environ.items() if k != 'TF_USE_LEGACY_KERAS'}
    return subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize('package', ['feature_spec', 'rec_models', 'tfx_pipeline', 'serving'])
def test_importing_a_package_first_gives_keras_2(package):
    result = _python(f'import {package}, tensorflow as tf; print(tf.keras.__name__)')
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith('tf_keras')


def test_import_after_keras_3_fails_with_what_to_set():
    result = _python('import tensorflow as tf; tf.keras.layers; import rec_models')
    assert result.returncode != 0
    assert 'TF_USE_LEGACY_KERAS=1' in result.stderr and 'Keras 3' in result.stderr
