"""The Transform component's module: the ``preprocessing_fn`` generated from the feature spec."""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from feature_spec import spec as spec_lib  # pylint: disable=wrong-import-position
from feature_spec.transform import build_preprocessing_fn  # pylint: disable=wrong-import-position


def preprocessing_fn(inputs, custom_config):
    """TFX Transform entry point; ``custom_config['feature_spec']`` is the spec file's path."""
    return build_preprocessing_fn(spec_lib.load(custom_config['feature_spec']))(inputs)
