"""The pipeline's console (:mod:`tfx_pipeline.console`).

* The orchestrators' own records become one line when a component starts and one when it ends, with its duration and
  figure (read from its outputs, or reported from inside it); resolvers stay silent; a figure that cannot be read
  never stops the run.
* A progress bar redraws in place on a terminal (percentage, examples/s, ETA) and prints only its last line
  elsewhere, plus a line every ``QUIET_S`` seconds.
* A failure names the running component, the error's first lines and the log's path.
* ``capture``: everything the process writes, on either file descriptor and from child processes, goes to the log
  file; the console keeps its own lines, stdout its results; ``--verbose`` keeps everything on the console.
* ``python -m tfx_pipeline run`` with a failing component exits 1 with a short message, the traceback in the log.
"""

import io
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from tfx_pipeline import console as console_lib

from pipeline_cli import REPO, write_config


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _console(stream=None):
    return console_lib.Console(err=stream or io.StringIO(), out=io.StringIO(), log_path='/logs/run.log')


def _lines(console):
    return console.err.getvalue().splitlines()


def test_components_start_and_end_with_duration_and_figure():
    console = _console()
    console.figures = lambda node: {'StatisticsGen': 'rows train 10'}.get(node)
    boundaries = console_lib._Boundaries(console)  # pylint: disable=protected-access
    logger = logging.getLogger('absl')
    level = logger.level
    logger.setLevel(logging.INFO)   # as runners.run sets it (setLevel, not the attribute: it clears logging's cache)
    logger.addHandler(boundaries)
    try:
        logger.info('Component %s is running.', 'StatisticsGen')
        logger.info('Component %s is finished.', 'StatisticsGen')
        logger.info('node %s is running.', 'latest_blessed_model_resolver.din')   # BeamDagRunner's wording
        logger.info('node %s is finished.', 'latest_blessed_model_resolver.din')
        logger.info('Component %s is running.', 'Trainer.din')
        console.report('2 epochs, best val_auc 0.7000 (epoch 2)')
        logger.info('Component %s is finished.', 'Trainer.din')
        logger.info('Component %s is running.', 'Evaluator.din')
        logger.info('Component %s is finished.', 'Evaluator.din')   # no figure
        console.figures = lambda node: 1 / 0
        logger.info('Component %s is running.', 'Pusher.din')
        logger.info('Component %s is finished.', 'Pusher.din')      # a figure that fails
    finally:
        logger.removeHandler(boundaries)
        logger.setLevel(level)
    lines = _lines(console)
    started = [line[8:] for line in lines if '…' in line]
    assert started == ['StatisticsGen …', 'Trainer.din …', 'Evaluator.din …', 'Pusher.din …']
    done = [line[8:] for line in lines if 'done in' in line]
    assert len(done) == 4 and not any('resolver' in line for line in lines)
    assert done[0].startswith('StatisticsGen done in 0.') and done[0].endswith(' s: rows train 10')
    assert done[1].endswith(': 2 epochs, best val_auc 0.7000 (epoch 2)')
    assert done[2].endswith(' s') and done[3].endswith(' s')
    assert all(line.startswith('[ 0:00] ') for line in lines)


def test_a_bar_redraws_on_a_terminal_and_prints_its_last_line_elsewhere(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(console_lib, '_now', lambda: clock[0])   # the console's clock, not the process's
    terminal = _console(_Terminal())
    bar = terminal.bar('epoch 1/2', 1000)
    for done in (250, 500):
        clock[0] += 1.0
        bar.update(done)
    bar.close(': auc 0.7')
    text = terminal.err.getvalue()
    assert '\r\033[K' in text
    assert 'epoch 1/2 [============            ]  50% 500 examples 250 examples/s ETA 0:02' in text
    assert text.endswith('epoch 1/2: 500 examples in 2.0 s (250 examples/s): auc 0.7\n')

    pipe = _console()
    monkeypatch.setattr(console_lib, 'QUIET_S', 5.0)
    bar = pipe.bar('epoch 1/2', None)
    for done in range(100, 1100, 100):   # 10 s at 100 examples/s: one line at 5 s, one at 10 s
        clock[0] += 1.0
        bar.update(done)
    bar.close()
    lines = _lines(pipe)
    assert '\r' not in pipe.err.getvalue() and len(lines) == 3
    assert lines[0].endswith('epoch 1/2 500 examples 100 examples/s 0:05')
    assert lines[2].endswith('epoch 1/2: 1,000 examples in 10.0 s (100 examples/s)')


def test_a_failure_names_the_component_the_error_and_the_log():
    console = _console()
    console.component('Transform', 'running')
    console.failed(ValueError('\n'.join(f'line {k}' for k in range(10))))
    lines = _lines(console)
    assert lines[0].endswith('] Transform …')
    assert 'Transform failed after 0.' in lines[1] and lines[1].endswith('ValueError: line 0')
    assert [line.strip() for line in lines[2:]] == [f'line {k}' for k in range(1, 6)] + ['…', 'the full log: '
                                                                                          '/logs/run.log']


_CAPTURE = textwrap.dedent('''
    import logging, os, subprocess, sys, warnings
    from tfx_pipeline import console as console_lib
    with console_lib.capture(sys.argv[1], verbose=sys.argv[2] == '1') as console:
        print('print to stdout')
        os.write(2, b'C++ log line\\n')
        subprocess.run([sys.executable, '-c', 'import sys; print("child out"); print("child err", file=sys.stderr)'])
        logging.getLogger('absl').warning('absl warning')
        warnings.warn('a python warning')
        console_lib.current().line('console line')
        console.result('{"summary": 1}')
    print('after the run')
''')


@pytest.mark.parametrize('verbose', [False, True])
def test_capture_sends_everything_else_to_the_log(tmp_path, verbose):
    done = subprocess.run([sys.executable, '-c', _CAPTURE, str(tmp_path / 'logs'), '1' if verbose else '0'],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    noise = ['print to stdout', 'C++ log line', 'child out', 'child err', 'absl warning', 'a python warning']
    if verbose:
        assert all(line in done.stdout + done.stderr for line in noise)
        assert not os.listdir(tmp_path / 'logs')
        return
    assert done.stdout == '{"summary": 1}\nafter the run\n'
    [log] = os.listdir(tmp_path / 'logs')
    assert done.stderr.splitlines()[0].endswith(f'logs: {tmp_path / "logs" / log} (--verbose shows them here)')
    assert done.stderr.splitlines()[1].endswith('] console line') and len(done.stderr.splitlines()) == 2
    logged = (tmp_path / 'logs' / log).read_text()
    assert all(line in logged for line in noise), logged
    assert 'WARNING absl: absl warning' in logged   # Python records carry their time and level


def test_a_failing_component_is_named_with_its_error_and_the_log(tiny_data, tmp_path):
    script = textwrap.dedent('''
        import logging, sys, types
        import tfx_pipeline
        from tfx_pipeline.__main__ import main
        def run(pipeline, kind, seed=None):
            logging.getLogger('absl').info('Component %s is running.', 'Transform')
            raise ValueError('the preprocessing_fn failed\\nsecond line')
        tfx_pipeline.runners = sys.modules['tfx_pipeline.runners'] = types.SimpleNamespace(run=run)
        sys.exit(main(['run', '--config', sys.argv[1]]))
    ''')
    done = subprocess.run([sys.executable, '-c', script, write_config(tmp_path, tiny_data, 'fails')], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1 and done.stdout == ''
    lines = done.stderr.splitlines()
    assert len(lines) == 5, done.stderr
    assert 'Transform failed after' in lines[2] and lines[2].endswith('ValueError: the preprocessing_fn failed')
    assert lines[3].strip() == 'second line'
    log = lines[4].split('the full log: ')[1]
    assert log.startswith(str(tmp_path / 'runs' / 'fails' / 'logs'))
    with open(log) as f:
        logged = f.read()
    assert 'Traceback' in logged and 'ValueError: the preprocessing_fn failed' in logged
