"""recsys-tfx: industrial CTR and retrieval models as tested, servable Keras code inside a TFX pipeline.

Install with the pins (TFX 1.16 declares python<3.11 but runs on 3.11):

    PIP_IGNORE_REQUIRES_PYTHON=1 pip install -c constraints.txt -e '.[dev]'
"""

from setuptools import find_packages, setup

# The Kubeflow V2 compiler's packages that resolve beside protobuf 4.25.5 (kfp >= 2.14 needs protobuf >= 6; the kfp
# TFX 1.16 was tested with needs protobuf < 4).
KUBEFLOW = ['kfp==2.13.0', 'kfp-pipeline-spec==0.6.0', 'kfp-server-api==2.4.0', 'requests-toolbelt==1.0.0']

setup(
    name='recsys-tfx',
    version='0.1.0',
    description='Industrial recommender models (DIN, DeepFM, ...) in a TFX pipeline, servable by TF Serving.',
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['tfx_pipeline', 'tfx_pipeline.*', 'rec_models', 'rec_models.*',
                                    'feature_spec', 'feature_spec.*', 'serving', 'serving.*']),
    package_data={'feature_spec': ['specs/*.yaml'], 'tfx_pipeline': ['configs/*.yaml']},
    install_requires=[
        'tfx==1.16.0',
        'tensorflow==2.16.2',
        'tf-keras==2.16.0',
        'tensorflow-transform==1.16.0',
        'tensorflow-model-analysis==0.47.1',
        'tensorflow-data-validation==1.16.1',
        'tensorflow-serving-api==2.16.1',
        'tensorflow-recommenders==0.7.7',
        'apache-beam[gcp]==2.59.0',
        'numpy==1.26.4',
        'pyyaml>=6',
        'matplotlib==3.10.9',   # the run's report's figures (tfx_pipeline/report_figures.py) and the benchmarks' plots
    ],
    extras_require={
        # scann: to test the optional index; the kubeflow pins: to test the Kubeflow compile
        # websocket-client: the report's test drives headless Chromium through the DevTools protocol
        'dev': ['pytest>=8,<9', 'pytest-timeout>=2', 'pytest-xdist>=3', 'hypothesis>=6', 'scann==1.3.2',
                'websocket-client==1.9.2', *KUBEFLOW],
        'bench': [],                        # kept for `pip install '.[bench]'`: matplotlib is a requirement now
        'scann': ['scann==1.3.2'],          # the optional ScaNN index (tfx_pipeline/scann_index.py)
        'kubeflow': KUBEFLOW,               # runner.kind: kubeflow (tfx_pipeline/kubeflow.py)
    },
    entry_points={'console_scripts': ['recsys-pipeline=tfx_pipeline.__main__:main']},
)
