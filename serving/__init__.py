"""Serving: the SavedModel contract (:mod:`serving.signatures`), a TF-Serving-API model server
(:mod:`serving.server`, gRPC and REST) and a client (:mod:`serving.client`) that talks to it or to real TF Serving.

The server needs TensorFlow and ``tensorflow-serving-api`` only, not the rest of this project; the client's
example readers use the feature spec. Keras 2 is asked for (as everywhere in this project) in case a model's
custom objects are loaded here.
"""

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
