"""The TFX pipeline: ExampleGen → StatisticsGen/SchemaGen/ExampleValidator → Transform → Trainer → Evaluator →
Pusher, driven by one config and one feature spec. ``python -m tfx_pipeline --help`` lists the commands."""

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()
