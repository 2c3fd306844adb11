"""Kubeflow Pipelines V2 (and Vertex AI Pipelines): the same pipeline, compiled by TFX's ``KubeflowV2DagRunner``
into ``runs/<name>/kubeflow/pipeline.json`` (a ``PipelineJob``), to be submitted with kfp's client or Vertex's.

    python -m tfx_pipeline run --config tfx_pipeline/configs/demo.yaml --set runner.kind=kubeflow \\
        --set runner.image=REGISTRY/recsys-tfx:TAG --set runner.pipeline_root=gs://BUCKET/pipelines \\
        --set data.path=gs://BUCKET/data/default --set data.synthetic=null

Every task runs in ``runner.image`` (the repository's ``Dockerfile``: this project installed at
``runner.image_workdir``), so the paths the tasks read are the image's (the feature spec) or a bucket's (the data,
the pipeline root, the pushed models: ``<pipeline_root>/serving/<model>/``); a local path is refused when the config
is read (:mod:`tfx_pipeline.config`), since no task could open it. ML Metadata is the cluster's, not a local SQLite
file.

Choice: the Evaluator's COEC needs the training CTR per position, which a local run reads from the data when the
pipeline is built; a compiled pipeline cannot read the bucket then, so its Evaluator reports no COEC (every other
metric and the blessing are the same).
TFX 1.16 has no Kubeflow V1 runner; it is not offered.
"""

import os
import tempfile

from tfx import v1 as tfx

PIPELINE_FILE = 'pipeline.json'


def compile_pipeline(pipeline: tfx.dsl.Pipeline, image: str, out_dir: str) -> str:
    """Writes ``out_dir/pipeline.json`` whole (compiled beside it, then moved over the previous one); its path."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner  # pylint: disable=g-import-not-at-top
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
            config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image),
            output_dir=staging, output_filename=PIPELINE_FILE)
        runner.run(pipeline)
        path = os.path.join(out_dir, PIPELINE_FILE)
        os.replace(os.path.join(staging, PIPELINE_FILE), path)
    return path
