"""Serving: SavedModels that TF Serving loads (exported by :mod:`tfx_pipeline.trainer`); the TF-Serving-API
server and client for local use come with the serving issue."""

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()
