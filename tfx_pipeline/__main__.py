"""Command line: ``python -m tfx_pipeline {models,run,tensorboard}``.

    python -m tfx_pipeline models
    python -m tfx_pipeline tensorboard demo      # the tensorboard command for runs/demo, and its log directories
    python -m tfx_pipeline run --config tfx_pipeline/configs/demo.yaml --set training.model=deepfm
    python -m tfx_pipeline run --data data/amazon --set training.model=din     # an importer's output

``run`` with ``runner.kind: kubeflow`` compiles the pipeline for Kubeflow Pipelines V2 instead of running it
(:mod:`tfx_pipeline.kubeflow`) and prints ``{"kubeflow_pipeline": path}``.

``run --data DIR`` runs on a directory an importer wrote (:mod:`tfx_pipeline.importers`): ``data.path`` = DIR,
``feature_spec`` = DIR/feature_spec.yaml, TFRecord files, no synthetic data, and the run named after DIR (``--set``
overrides any of these); the importer's warnings (metadata.json) are printed first.

``run`` checks the config, the model, the feature spec and the data before any component starts, generates the
synthetic data set if the config asks for one that is not there yet, runs the pipeline, and prints a one-line
JSON summary per model on stdout (one model: its last line). The console (stderr) shows each component's start and
end with its figure, and progress bars; everything else goes to ``runs/<name>/logs/`` unless ``--verbose``
(:mod:`tfx_pipeline.console`). A failed component is named with its error and the log's path (exit 1).
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import List, Optional

from feature_spec import ensure_legacy_keras

ensure_legacy_keras()

from feature_spec.spec import SpecError  # pylint: disable=wrong-import-position
from tfx_pipeline import config as config_lib  # pylint: disable=wrong-import-position


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m tfx_pipeline', description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('models', help='list the registered model names')
    run = commands.add_parser('run', help='run the pipeline and print a JSON summary')
    run.add_argument('--config', help='pipeline config YAML (default: built-in defaults)')
    run.add_argument('--set', action='append', default=[], metavar='SECTION.KEY=VALUE',
                     help='override a config value (repeatable), e.g. --set training.model=deepfm')
    run.add_argument('--data', metavar='DIR', help='a directory written by python -m tfx_pipeline.importers: its '
                                                   'data and feature spec (see above)')
    run.add_argument('--verbose', action='store_true', help='every log line on the console (absl, Beam, TF), not '
                                                             'only in runs/<name>/logs/')
    board = commands.add_parser('tensorboard', help='print the tensorboard command and the log directories of a run')
    board.add_argument('run', help='the run: its name (runs/<name>) or its directory')
    args = parser.parse_args(argv)

    if args.command == 'tensorboard':
        return _tensorboard(args.run)
    if args.command == 'models':
        from rec_models import registry  # pylint: disable=g-import-not-at-top
        print('\n'.join(registry.names()))
        return 0
    try:
        config = config_lib.load(args.config, _data_overrides(args.data) + args.set)
    except (config_lib.ConfigError, SpecError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    from tfx_pipeline import console as console_lib  # pylint: disable=g-import-not-at-top
    with console_lib.capture(os.path.join(config.run_dir, 'logs'), verbose=args.verbose) as console:
        from tfx_pipeline import component_figures  # pylint: disable=g-import-not-at-top
        console.figures = component_figures.for_run(config, console)
        try:
            from tfx_pipeline import validation  # pylint: disable=g-import-not-at-top
            if config.kubeflow:   # the data is in a bucket, read by the tasks
                spec = validation.validate(config, check_data=False)
            else:
                _generate_if_missing(config, console)
                spec = validation.validate(config)
        except (config_lib.ConfigError, SpecError) as e:
            console.line(f'error: {e}')
            return 2
        return _run(config, spec, console)


def _tensorboard(run: str) -> int:
    """``tensorboard RUN``: prints the command that opens every TensorBoard directory of the run, then each
    directory (``<name>  <path>``); exit 2 when RUN is no run."""
    from tfx_pipeline import board  # pylint: disable=g-import-not-at-top
    run_dir = run if os.path.isdir(run) else os.path.join(config_lib.PipelineConfig().runs_dir, run)
    try:
        dirs = board.log_dirs(run_dir)
    except FileNotFoundError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if not dirs:
        print(f'error: {run_dir}: no Trainer has written TensorBoard logs there yet', file=sys.stderr)
        return 2
    print(board.tensorboard_command(dirs))
    for name, path in dirs.items():
        print(f'{name}  {path}')
    return 0


def _data_overrides(directory: Optional[str]) -> List[str]:
    """The config overrides of ``run --data DIR`` (module docstring); prints the importer's warnings."""
    if directory is None:
        return []
    from tfx_pipeline.importers import common  # pylint: disable=g-import-not-at-top
    spec = os.path.join(directory, common.SPEC_FILE)
    if not os.path.isfile(spec):
        raise config_lib.ConfigError(f'--data {directory}: no {common.SPEC_FILE} there; give a directory written by '
                                     'python -m tfx_pipeline.importers (or use --set data.path=… --set '
                                     'feature_spec=…)')
    metadata_path = os.path.join(directory, common.METADATA_FILE)
    if os.path.isfile(metadata_path):
        with open(metadata_path) as f:
            for warning in json.load(f).get('warnings', []):
                print(f'[data] warning: {warning}', file=sys.stderr, flush=True)
    name = os.path.basename(os.path.normpath(os.path.abspath(directory)))
    return [f'data.path={json.dumps(directory)}', f'feature_spec={json.dumps(spec)}', 'data.synthetic=null',
            'data.format=tfrecord', f'name={json.dumps(name)}']


def _generate_if_missing(config: config_lib.PipelineConfig, console) -> None:
    synthetic = config.data.synthetic
    if not synthetic or os.path.exists(os.path.join(config.data.path, 'metadata.json')):
        return
    from tfx_pipeline import data  # pylint: disable=g-import-not-at-top
    options = dict(synthetic)
    preset = options.pop('preset', 'default')
    if preset not in data.PRESETS:
        raise config_lib.ConfigError(f'config: data.synthetic.preset {preset!r} is not one of {sorted(data.PRESETS)}')
    try:
        generator_config = dataclasses.replace(data.PRESETS[preset], **options).validate()
    except (TypeError, ValueError) as e:
        raise config_lib.ConfigError(f'config: data.synthetic: {e}') from e
    from feature_spec import spec as spec_lib  # pylint: disable=g-import-not-at-top
    spec = spec_lib.load(config.feature_spec)
    missing = [c for c in spec.raw_columns if c not in data.COLUMNS]
    if missing:   # e.g. a mistyped data.path beside the user's own spec: generating there cannot help
        raise config_lib.ConfigError(
            f'config: data.path {config.data.path!r} holds no data set (no metadata.json), and data.synthetic would '
            f'generate the synthetic log there, but feature spec {config.feature_spec} reads columns that log does '
            f'not have ({", ".join(missing[:5])}{", …" if len(missing) > 5 else ""}): check data.path, or remove '
            'data.synthetic')
    console.line(f'generating the {preset!r} synthetic data set into {config.data.path}')
    bar = console.bar('data', generator_config.num_impressions if generator_config.negative_sampling_rate == 1.0
                      else None, unit='rows')
    data.generate_and_write(generator_config, config.data.path, formats=(config.data.format,), progress=bar.update)
    bar.close()

def _run(config: config_lib.PipelineConfig, spec, console) -> int:
    import logging  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import runners  # pylint: disable=g-import-not-at-top
    from tfx_pipeline import summary  # pylint: disable=g-import-not-at-top
    from tfx_pipeline.anomalies_gate import DataAnomaliesError  # pylint: disable=g-import-not-at-top
    if config.kubeflow:
        from tfx_pipeline import kubeflow  # pylint: disable=g-import-not-at-top
        path = kubeflow.compile_pipeline(pipeline_lib.create_pipeline(config, spec), config.runner.image,
                                         os.path.join(config.run_dir, 'kubeflow'))
        console.line(f'compiled the Kubeflow V2 pipeline (image {config.runner.image}, root '
                     f'{config.runner.pipeline_root})')
        console.result(json.dumps({'kubeflow_pipeline': path}))
        return 0
    try:
        runners.run(pipeline_lib.create_pipeline(config, spec), config.runner.kind, seed=config.training.seed)
    except DataAnomaliesError as e:
        console.line(f'error: {e}')
        _write_report(config, console, stopped='the data does not match the feature spec')   # lists the anomalies
        return 1
    except Exception as e:  # pylint: disable=broad-except  # the log keeps the traceback; the console names it
        logging.getLogger(__name__).exception('the pipeline failed')
        console.failed(e)
        return 1
    for line in summary.summarize(config):
        console.result(json.dumps(line, sort_keys=False))
    _write_evaluation_scalars(config, console)
    _write_report(config, console)
    return 0


def _write_evaluation_scalars(config: config_lib.PipelineConfig, console) -> None:
    """The Evaluator's per-slice metrics as TensorBoard scalars (:func:`tfx_pipeline.board.write_evaluation`) and
    where TensorBoard finds the run's logs; a failure is a console line, never the run's exit status."""
    import logging  # pylint: disable=g-import-not-at-top
    try:
        from tfx_pipeline import board  # pylint: disable=g-import-not-at-top
        board.write_evaluation(config)
        console.line(f'TensorBoard: python -m tfx_pipeline tensorboard {config.run_dir}')
    except Exception as e:  # pylint: disable=broad-except  # the log keeps the traceback
        logging.getLogger(__name__).exception('the evaluation scalars failed')
        console.line(f'TensorBoard: the evaluation scalars not written ({type(e).__name__}: {e})')


def _write_report(config: config_lib.PipelineConfig, console, stopped: Optional[str] = None) -> None:
    """``runs/<name>/report.html`` (:mod:`tfx_pipeline.report`); its failure is a console line and never changes the
    run's exit status."""
    import logging  # pylint: disable=g-import-not-at-top
    try:
        from tfx_pipeline import report  # pylint: disable=g-import-not-at-top
        console.line(f'report: {report.write_report(config, stopped=stopped)}')
    except Exception as e:  # pylint: disable=broad-except  # the log keeps the traceback
        logging.getLogger(__name__).exception('the report failed')
        console.line(f'report: not written ({type(e).__name__}: {e}); the log has the traceback')


if __name__ == '__main__':
    sys.exit(main())
