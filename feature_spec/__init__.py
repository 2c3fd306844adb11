"""The declarative feature spec: the single source of truth for Transform, model inputs and serving.

Importing any package of this project makes TensorFlow use Keras 2 (``tf_keras``), which TF Transform and
TensorFlow Recommenders need: ``TF_USE_LEGACY_KERAS=1`` is set if TensorFlow is not imported yet, and an import
after TensorFlow already chose Keras 3 fails with a message saying what to set.
"""

import os
import sys

LEGACY_KERAS_VARIABLE = 'TF_USE_LEGACY_KERAS'


def ensure_legacy_keras() -> None:
    """Sets TF_USE_LEGACY_KERAS=1, or fails if TensorFlow was imported without it and serves Keras 3."""
    os.environ.setdefault(LEGACY_KERAS_VARIABLE, '1')
    tensorflow = sys.modules.get('tensorflow')
    if tensorflow is None:
        return
    keras_module = getattr(getattr(tensorflow, 'keras', None), '__name__', '')
    if not keras_module.startswith('tf_keras'):
        raise ImportError(
            f'tf.keras is Keras 3 ({keras_module}); this project needs Keras 2. Set the environment variable '
            f'{LEGACY_KERAS_VARIABLE}=1 before TensorFlow is imported (e.g. `export {LEGACY_KERAS_VARIABLE}=1`), '
            'or import this project before TensorFlow.')


ensure_legacy_keras()
