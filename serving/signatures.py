"""The SavedModel contract shared by the exporter (:mod:`tfx_pipeline.export`), the server and the client.

Every pushed model carries four signatures over raw serialized ``tf.Example`` protos (the Transform graph is inside
the model, so clients send raw features):

=================== ================================ ============================================ =================
signature           method name                      inputs                                       outputs
=================== ================================ ============================================ =================
``serving_default`` ``tensorflow/serving/predict``   ``examples``: string ``[N]``                 ``probabilities``:
                                                                                                  float ``[N]``
``rank``            ``tensorflow/serving/predict``   ``context``: string ``[]`` (user, behaviour  ``probabilities``:
                                                     sequence, request context); ``candidates``:  float ``[N]``
                                                     string ``[N]`` (item features)
``classification``  ``tensorflow/serving/classify``  ``inputs``: string ``[N]``                   ``classes``: string
                                                                                                  ``[N, 2]``,
                                                                                                  ``scores``: float
                                                                                                  ``[N, 2]``
``regression``      ``tensorflow/serving/regress``   ``inputs``: string ``[N]``                   ``outputs``: float
                                                                                                  ``[N]``
=================== ================================ ============================================ =================

A multi-head model's ``serving_default`` and ``rank`` also return every served head by name (``ctr``, ``cvr``,
``ctcvr``, …), each float ``[N]``; ``probabilities`` is the primary head, which ``classification`` and
``regression`` serve. A client learns the heads from GetModelMetadata (the outputs of ``serving_default``).

``tf.saved_model.save`` writes every signature with the predict method name; TF Serving's ``Classify`` and
``Regress`` APIs refuse a signature whose method name is not theirs, so :func:`set_method_names` rewrites them in
``saved_model.pb`` after saving. Loading with ``tf.saved_model.load`` is unaffected.
"""

import os
from typing import Dict, Mapping

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

PREDICT = 'serving_default'
RANK = 'rank'
CLASSIFY = 'classification'
REGRESS = 'regression'

# A retrieval model's signatures (tfx_pipeline.retrieval_export): retrieve (context [N], k []) and
# retrieve_excluding (… and exclude [N, E] raw item ids) → item_ids [N, k] strings, scores [N, k];
# embed_query (context [N]) → embeddings [N, d] (and interest_mask [N, K] with [N, K, d] for several interests);
# embed_candidate (candidates [N]) → embeddings [N, d]; serving_default (examples [N]) → retrieve with k = 100.
RETRIEVE = 'retrieve'
RETRIEVE_EXCLUDING = 'retrieve_excluding'
EMBED_QUERY = 'embed_query'
EMBED_CANDIDATE = 'embed_candidate'
K = 'k'
EXCLUDE = 'exclude'
ITEM_IDS = 'item_ids'
SCORES = 'scores'
EMBEDDINGS = 'embeddings'
INTEREST_MASK = 'interest_mask'

EXAMPLES = 'examples'
CONTEXT = 'context'
CANDIDATES = 'candidates'
PROBABILITIES = 'probabilities'

PREDICT_METHOD = 'tensorflow/serving/predict'
CLASSIFY_METHOD = 'tensorflow/serving/classify'
REGRESS_METHOD = 'tensorflow/serving/regress'
# TF Serving's fixed tensor keys of the classify and regress methods (tensorflow/python/saved_model/signature_constants).
CLASSIFY_INPUTS = 'inputs'
CLASSIFY_CLASSES = 'classes'
CLASSIFY_SCORES = 'scores'
REGRESS_INPUTS = 'inputs'
REGRESS_OUTPUTS = 'outputs'

METHOD_NAMES = {CLASSIFY: CLASSIFY_METHOD, REGRESS: REGRESS_METHOD}

SAVED_MODEL_FILE = 'saved_model.pb'
WARMUP_FILE = os.path.join('assets.extra', 'tf_serving_warmup_requests')


def read_saved_model(export_dir: str) -> saved_model_pb2.SavedModel:
    """The ``saved_model.pb`` proto of ``export_dir``."""
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(export_dir, SAVED_MODEL_FILE), 'rb') as f:
        proto.ParseFromString(f.read())
    return proto


def signature_defs(export_dir: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """The serving meta graph's SignatureDefs by name, as TF Serving reads them (``GetModelMetadata``)."""
    return dict(read_saved_model(export_dir).meta_graphs[0].signature_def)


def set_method_names(export_dir: str, methods: Mapping[str, str] = None) -> None:
    """Rewrites the method name of the named signatures in ``export_dir/saved_model.pb`` (default: classify and
    regress, :data:`METHOD_NAMES`). Signatures the model does not have are left out; the file is replaced atomically."""
    methods = METHOD_NAMES if methods is None else methods
    proto = read_saved_model(export_dir)
    for meta_graph in proto.meta_graphs:
        for name, method in methods.items():
            if name in meta_graph.signature_def:
                meta_graph.signature_def[name].method_name = method
    path = os.path.join(export_dir, SAVED_MODEL_FILE)
    with tf.io.gfile.GFile(path + '.tmp', 'wb') as f:
        f.write(proto.SerializeToString())
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
