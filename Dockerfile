# The image every task of a compiled Kubeflow pipeline runs (runner.image; tfx_pipeline/kubeflow.py): this
# repository at /recsys (runner.image_workdir), installed with the pins that make TFX 1.16 install on Python 3.11.
# TFX's Kubeflow V2 entrypoint (python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor) is the
# tasks' command, so the image needs no ENTRYPOINT of its own.
#
#   docker build -t REGISTRY/recsys-tfx:TAG . && docker push REGISTRY/recsys-tfx:TAG
#
# Not built on the project's machines (no Docker there): the compiled pipeline is tested, the image is not.
FROM python:3.11-slim-bookworm

ENV TF_USE_LEGACY_KERAS=1 \
    PIP_IGNORE_REQUIRES_PYTHON=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /recsys
COPY setup.py constraints.txt README.md ./
COPY feature_spec ./feature_spec
COPY rec_models ./rec_models
COPY serving ./serving
COPY tfx_pipeline ./tfx_pipeline
RUN pip install -c constraints.txt -e '.[kubeflow]'
