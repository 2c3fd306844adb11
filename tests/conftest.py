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


# Session fixtures that take minutes: the modules that use one run on one xdist worker (``make test`` runs two), so
# that each is built once; every other module is a scheduling unit of its own (its module fixtures built once).
_SHARED_FIXTURES = ('pipeline_run', 'exports', 'zoo', 'prepared_small')


@pytest.hookimpl(tryfirst=True)   # before xdist reads the marks
def pytest_collection_modifyitems(items):
    parent = {}

    def root(name):
        parent.setdefault(name, name)
        while parent[name] != name:
            name = parent[name]
        return name

    def module(item):
        return item.nodeid.split('::')[0]

    for item in items:
        params = getattr(item, 'callspec', None)   # a fixture chosen by a parameter, e.g. ``run`` = 'pipeline_run'
        used = set(item.fixturenames) | {v for v in (params.params.values() if params else ()) if isinstance(v, str)}
        for name in _SHARED_FIXTURES:
            if name in used:
                a, b = sorted((root(module(item)), root(name)))
                parent[b] = a
    for item in items:
        item.add_marker(pytest.mark.xdist_group(root(module(item))))
