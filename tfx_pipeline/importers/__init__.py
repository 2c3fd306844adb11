"""Importers of public click-log formats into the pipeline's data layout and a feature spec.

    python -m tfx_pipeline.importers criteo --input train.txt --out data/criteo
    python -m tfx_pipeline.importers libfm --input frappe.libfm --out data/frappe
    python -m tfx_pipeline.importers amazon --input local_train_splitByUser --out data/amazon

    from tfx_pipeline.importers import criteo, libfm
    metadata = criteo.import_file('train.txt', 'data/criteo', fractions=(0.8, 0.1, 0.1), min_frequency=10)

Each writes ``<out>/tfrecord/{train,eval,test}/part-00000.tfrecord``, ``<out>/feature_spec.yaml`` and
``<out>/metadata.json`` (:mod:`tfx_pipeline.importers.common`); the choices for each format (transforms, missing
values, split, feature group) are in the docstrings of :mod:`~tfx_pipeline.importers.criteo`,
:mod:`~tfx_pipeline.importers.libfm` and :mod:`~tfx_pipeline.importers.amazon`.
"""

from tfx_pipeline.importers.common import InputError

__all__ = ['InputError']
