"""CTR ranking models built from a resolved feature spec (:class:`feature_spec.model_inputs.ModelInputs`).

Importing this package does not import TensorFlow. Submodules:

* :mod:`rec_models.registry`: model names → classes and default hyper-parameters; ``build`` a model by name.
* :mod:`rec_models.base`: ``RankingModel``, the Keras model base class (outputs dict, losses, train/test steps).
* :mod:`rec_models.deepfm`, :mod:`rec_models.din`: the models.
* :mod:`rec_models.layers`: the shared layers.
* :mod:`rec_models.metrics`: AUC / GAUC in NumPy.
"""

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()
