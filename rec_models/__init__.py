"""CTR ranking models built from a resolved feature spec (:class:`feature_spec.model_inputs.ModelInputs`).

Importing this package does not import TensorFlow. Submodules:

* :mod:`rec_models.registry`: model names → classes and default hyper-parameters; ``build`` a model by name.
* :mod:`rec_models.base`: ``RankingModel``, the Keras model base class (outputs dict, losses, train/test steps).
* :mod:`rec_models.interaction`, :mod:`rec_models.sequence`, :mod:`rec_models.multitask`: the model families, one
  package a family and one model a module named after its paper.
* :mod:`rec_models.tasks`: the tasks (losses, metrics and served heads) the models are built from.
* :mod:`rec_models.layers`: the shared layers.
* :mod:`rec_models.metrics`: AUC / GAUC in NumPy.
"""

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()
