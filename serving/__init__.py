"""Serving: the SavedModel contract (:mod:`serving.signatures`), a TF-Serving-API model server
(:mod:`serving.server`, gRPC and REST) and a client (:mod:`serving.client`) that talks to it or to real TF Serving."""

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()
