"""Importers of public click-log formats into the pipeline's data layout and a feature spec.

    python -m tfx_pipeline.importers criteo --input train.txt --out data/criteo
    python -m tfx_pipeline.importers libfm --input frappe.libfm --out data/frappe
    python -m tfx_pipeline.importers amazon --input local_train_splitByUser --out data/amazon
    python -m tfx_pipeline.importers sequence --input Beauty.txt --out data/beauty            # SASRec/BERT4Rec
    python -m tfx_pipeline.importers movielens --input ml-1m/ratings.dat --movies ml-1m/movies.dat --out data/ml-1m

    from tfx_pipeline.importers import criteo, libfm
    metadata = criteo.import_file('train.txt', 'data/criteo', fractions=(0.8, 0.1, 0.1), min_frequency=10)

Each writes ``<out>/tfrecord/{train,eval,test}/part-00000.tfrecord``, ``<out>/feature_spec.yaml`` and
``<out>/metadata.json`` (:mod:`tfx_pipeline.importers.common`); the choices for each format (transforms, missing
values, split, feature group) are in the docstrings of :mod:`~tfx_pipeline.importers.criteo`,
:mod:`~tfx_pipeline.importers.libfm` and :mod:`~tfx_pipeline.importers.amazon`. The retrieval data sets,
:mod:`~tfx_pipeline.importers.sequence` (the SASRec/BERT4Rec ``user item`` files: Beauty, ML-1m, …) and
:mod:`~tfx_pipeline.importers.movielens` (ML-1M ``ratings.dat`` with ``movies.dat``'s genre and year), write
positives only (``click`` = 1), split leave-one-out per user as SASRec and BERT4Rec evaluate: each user's last item
is the test example, the second-to-last the eval example, each with the user's earlier items as its history.
"""

from tfx_pipeline.importers.common import InputError

__all__ = ['InputError']
