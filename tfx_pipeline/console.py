"""The pipeline's console: what a person watching ``python -m tfx_pipeline run`` sees.

Without ``--verbose``, :func:`capture` sends everything the process and its child processes write (absl, Beam,
TensorFlow's C++ logs, warnings: file descriptors 1 and 2) to ``runs/<name>/logs/run-<time>.log``, with a time on
every Python log record, and the console shows: one line when a component starts and one when it ends (its duration
and the one figure that matters, :mod:`tfx_pipeline.component_figures`), progress bars (the data generator, each
training epoch), a failed component's error with the log's path, and the summary (stdout). ``--verbose`` leaves every
stream where it was and writes the console's lines among them.

A component's start and end are the orchestrators' own log records ("Component X is running." from LocalDagRunner,
"node X is running." from BeamDagRunner), read by a logging handler: no runner is patched. A component that runs in
this process (the Trainer) reports its figure itself (:meth:`Console.report`); the others' figures are read from
their outputs.

Choice: a bar is redrawn in place only on a terminal; elsewhere (CI, a pipe, ``kubectl logs``) it prints one line
when it ends and one every :data:`QUIET_S` seconds while it runs, so a log stays short and still shows a long epoch
moving.
"""

import contextlib
import logging
import os
import re
import sys
import time
from typing import Callable, Dict, Optional

QUIET_S = 30.0
_REDRAW_S = 0.1
_BAR_WIDTH = 24
_BOUNDARY = re.compile(r'^(?:Component|node) (\S+) is (running|finished)\.$')


def _now() -> float:
    return time.monotonic()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}' if seconds >= 3600 else \
        f'{seconds // 60}:{seconds % 60:02d}'


class Bar:
    """A progress bar of ``total`` units (None: unknown, no percentage or ETA); :meth:`update` with the units done
    so far, :meth:`close` with the line that stays."""

    def __init__(self, console: 'Console', label: str, total: Optional[int], unit: str):
        self._console, self.label, self.total, self.unit = console, label, total, unit
        self.started = self._last_draw = self._last_line = _now()
        self.done = 0

    def rate(self) -> float:
        return self.done / max(_now() - self.started, 1e-9)

    def text(self) -> str:
        rate = self.rate()
        figures = f'{self.done:,} {self.unit} {rate:,.0f} {self.unit}/s'
        if not self.total:
            return f'{self.label} {figures} {_clock(_now() - self.started)}'
        fraction = min(self.done / self.total, 1.0)
        filled = int(round(fraction * _BAR_WIDTH))
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        return (f'{self.label} [{"=" * filled}{" " * (_BAR_WIDTH - filled)}] {fraction:4.0%} {figures} '
                f'ETA {_clock(max(eta, 0.0))}')

    def update(self, done: int) -> None:
        self.done = done
        now = _now()
        if self._console.tty:
            if now - self._last_draw >= _REDRAW_S:
                self._last_draw = now
                self._console.redraw(self.text())
        elif now - self._last_line >= QUIET_S:
            self._last_line = now
            self._console.line(self.text())

    def close(self, suffix: str = '') -> None:
        seconds = _now() - self.started
        line = f'{self.label}: {self.done:,} {self.unit} in {seconds:.1f} s ({self.rate():,.0f} {self.unit}/s)'
        self._console.line(f'{line}{suffix}', indent=True)


class Console:
    """Lines for a person (``err``) and results for a program (``out``); see the module docstring."""

    def __init__(self, err=None, out=None, log_path: Optional[str] = None):
        self._err, self._out, self.log_path = err, out, log_path
        self.started = _now()
        self.rows: Dict[str, int] = {}        # rows per split, once StatisticsGen has counted them
        self.figures: Optional[Callable[[str], Optional[str]]] = None
        self.running: Optional[str] = None
        self._component_started = 0.0
        self._reported: Optional[str] = None
        self._drawn = False

    @property
    def err(self):
        return self._err or sys.stderr

    @property
    def out(self):
        return self._out or sys.stdout

    @property
    def tty(self) -> bool:
        return bool(getattr(self.err, 'isatty', lambda: False)())

    def _clear(self) -> None:
        if self._drawn:
            self.err.write('\r\033[K')
            self._drawn = False

    def redraw(self, text: str) -> None:
        self._clear()
        self.err.write(f'       {text}')
        self.err.flush()
        self._drawn = True

    def line(self, text: str, indent: bool = False) -> None:
        self._clear()
        prefix = ' ' * 7 if indent else f'[{_clock(_now() - self.started):>5}]'
        self.err.write(f'{prefix} {text}\n')
        self.err.flush()

    def result(self, text: str) -> None:
        self._clear()
        self.out.write(f'{text}\n')
        self.out.flush()

    def bar(self, label: str, total: Optional[int], unit: str = 'examples') -> Bar:
        return Bar(self, label, total, unit)

    def report(self, figure: str) -> None:
        """The running component's figure, from inside it (printed when it ends)."""
        self._reported = figure

    def component(self, node_id: str, state: str) -> None:
        if state == 'running':
            self.running, self._component_started, self._reported = node_id, _now(), None
            if not node_id.startswith('latest_blessed_model_resolver'):
                self.line(f'{node_id} …')
            return
        seconds = _now() - self._component_started
        self.running = None
        if node_id.startswith('latest_blessed_model_resolver'):
            return
        figure = self._reported
        if figure is None and self.figures is not None:
            try:
                figure = self.figures(node_id)
            except Exception as e:  # pylint: disable=broad-except  # a figure never stops a run
                logging.getLogger(__name__).warning('no figure for %s: %r', node_id, e)
        self.line(f'{node_id} done in {seconds:.1f} s' + (f': {figure}' if figure else ''))

    def failed(self, error: BaseException) -> None:
        """The failed component (if one was running), the error's first lines and the log's path."""
        where = f'{self.running} failed after {_now() - self._component_started:.1f} s' \
            if self.running else 'the run failed'
        message = [line for line in str(error).strip().splitlines() if line.strip()] or ['']
        shown = message[:6] + (['…'] if len(message) > 6 else [])
        self.line(f'{where}: {type(error).__name__}: {shown[0]}')
        for line in shown[1:]:
            self.line(line, indent=True)
        if self.log_path:
            self.line(f'the full log: {self.log_path}', indent=True)


CONSOLE = Console()


def current() -> Console:
    """The console of the run in progress (a plain one writing to sys.stderr and sys.stdout outside a run)."""
    return CONSOLE


class _Boundaries(logging.Handler):
    """Turns the orchestrators' "is running" / "is finished" records into the console's component lines."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record):
        match = _BOUNDARY.match(record.getMessage())
        if match:
            self.console.component(*match.groups())


@contextlib.contextmanager
def capture(log_dir: str, verbose: bool = False):
    """Points :data:`CONSOLE` at the terminal and everything else at a new log file in ``log_dir`` (module
    docstring); with ``verbose``, only adds the component lines. Yields the console (set its ``figures``)."""
    global CONSOLE  # pylint: disable=global-statement
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, time.strftime('run-%Y%m%d-%H%M%S.log'))
    sys.stdout.flush()
    sys.stderr.flush()
    saved = None
    if not verbose:
        saved = os.dup(1), os.dup(2)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        out = os.fdopen(os.dup(saved[0]), 'w', encoding='utf-8', errors='replace')
        err = os.fdopen(os.dup(saved[1]), 'w', encoding='utf-8', errors='replace')
        console = Console(err, out, log_path)
    else:
        console = Console(log_path=None)
    previous, CONSOLE = CONSOLE, console
    boundaries = _Boundaries(console)
    absl_logger = logging.getLogger('absl')
    absl_logger.addHandler(boundaries)
    absl_level = absl_logger.level
    absl_logger.setLevel(min(absl_logger.getEffectiveLevel(), logging.INFO))   # the boundaries are INFO records
    root_handlers = list(logging.root.handlers)
    if not verbose or not root_handlers:   # the handler above would keep logging's last resort from printing
        root_handler = logging.StreamHandler(sys.stderr)   # fd 2: the log file unless verbose
        root_handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s'))
        logging.root.handlers = [root_handler]
    if not verbose:
        logging.captureWarnings(True)
        console.line(f'logs: {log_path} (--verbose shows them here)')
    try:
        yield console
    finally:
        absl_logger.removeHandler(boundaries)
        absl_logger.setLevel(absl_level)
        CONSOLE = previous
        logging.root.handlers = root_handlers
        if saved is not None:
            logging.captureWarnings(False)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            console.out.close()
            console.err.close()
