"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before TensorFlow is imported anywhere."""

import dataclasses
import os

import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@pytest.fixture(name='prepared_small', scope='session')
def fixture_prepared_small(tmp_path_factory):
    """The ``small`` synthetic data set (seed 0), written and transformed once for the session."""
    from tfx_pipeline import data, experiment  # pylint: disable=import-outside-toplevel
    config = dataclasses.replace(data.PRESETS['small'], seed=0)
    return experiment.prepare(config, str(tmp_path_factory.mktemp('small')))


@pytest.fixture(name='prepared_tiny', scope='session')
def fixture_prepared_tiny(tmp_path_factory):
    """The ``tiny`` synthetic data set (seed 0), written and transformed once for the session."""
    from tfx_pipeline import data, experiment  # pylint: disable=import-outside-toplevel
    return experiment.prepare(data.PRESETS['tiny'], str(tmp_path_factory.mktemp('tiny_prepared')))


@pytest.fixture(name='tiny_data', scope='session')
def fixture_tiny_data(tmp_path_factory):
    """The ``tiny`` synthetic data set written as TFRecord and CSV, once for the session."""
    from tfx_pipeline import data  # pylint: disable=import-outside-toplevel
    directory = tmp_path_factory.mktemp('tiny')
    data.generate_and_write(data.PRESETS['tiny'], str(directory))
    return directory
