"""Opens a page in a real headless browser (Debian's Chromium, which ``.ci/run`` installs) through the DevTools
protocol, and returns what a person would have seen: the console's errors, each image as the browser decoded it,
the page's text and a screenshot.

Choice: the DevTools protocol (``websocket-client``) rather than ``--dump-dom`` and ``--enable-logging``: the
console's errors come as events (a script's ``console.error``, an uncaught exception, a resource that failed to
load) instead of log lines whose format changes between versions, and the images' decoded sizes are read from the
rendered page.
"""

import base64
import dataclasses
import io
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from typing import List

CHROMIUM = '/usr/bin/chromium'
FLAGS = ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
         '--window-size=1280,900', '--remote-debugging-port=0')
WIDTH = 1280


@dataclasses.dataclass
class Rendered:
    """A page as the browser rendered it."""
    console_errors: List[str]
    images: List[dict]          # {'alt', 'complete', 'width', 'height'}: the decoded (natural) size of each <img>
    text: str                   # the body's rendered text
    screenshot: bytes           # PNG of the whole page


class _Session:
    """One DevTools connection: commands by id; the events that arrive meanwhile are kept."""

    def __init__(self, url: str, deadline: float):
        import websocket  # pylint: disable=import-outside-toplevel
        self._socket = websocket.create_connection(url, timeout=max(deadline - time.time(), 1), suppress_origin=True)
        self._deadline, self._next, self.events = deadline, 0, []

    def _receive(self) -> dict:
        if time.time() > self._deadline:
            raise TimeoutError('the browser did not answer in time')
        return json.loads(self._socket.recv())

    def call(self, method: str, **params) -> dict:
        self._next += 1
        self._socket.send(json.dumps({'id': self._next, 'method': method, 'params': params}))
        while True:
            message = self._receive()
            if message.get('id') == self._next:
                if 'error' in message:
                    raise RuntimeError(f'{method}: {message["error"]}')
                return message.get('result', {})
            self.events.append(message)

    def wait_for(self, event: str) -> None:
        while not any(e.get('method') == event for e in self.events):
            self.events.append(self._receive())

    def evaluate(self, expression: str):
        result = self.call('Runtime.evaluate', expression=expression, returnByValue=True)
        return result['result'].get('value')

    def close(self):
        self._socket.close()


def _devtools_port(profile: str, process: subprocess.Popen, deadline: float) -> int:
    path = os.path.join(profile, 'DevToolsActivePort')
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'{CHROMIUM} exited with status {process.returncode} before it listened')
        if os.path.exists(path):
            with open(path) as f:
                first = f.readline().strip()
            if first.isdigit():
                return int(first)
        time.sleep(0.05)
    raise TimeoutError(f'{CHROMIUM} wrote no {path}')


def console_errors(events: List[dict]) -> List[str]:
    """The errors among DevTools events: console.error / assert calls, uncaught exceptions, error log entries (a
    resource that failed to load, a blocked request)."""
    errors = []
    for event in events:
        method, params = event.get('method'), event.get('params', {})
        if method == 'Runtime.consoleAPICalled' and params.get('type') in ('error', 'assert'):
            errors.append(' '.join(str(a.get('value', a.get('description', ''))) for a in params.get('args', [])))
        elif method == 'Runtime.exceptionThrown':
            details = params.get('exceptionDetails', {})
            errors.append(details.get('exception', {}).get('description') or details.get('text', 'exception'))
        elif method == 'Log.entryAdded' and params.get('entry', {}).get('level') == 'error':
            entry = params['entry']
            errors.append(f'{entry.get("text")} {entry.get("url", "")}'.strip())
    return errors


def render(url: str, timeout: float = 60.0) -> Rendered:
    """Loads ``url`` in a fresh headless Chromium (its own profile, no network services) and reads it back."""
    deadline = time.time() + timeout
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen([CHROMIUM, *FLAGS, f'--user-data-dir={profile}', 'about:blank'],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port = _devtools_port(profile, process, deadline)
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=10) as answer:
                pages = [t for t in json.load(answer) if t.get('type') == 'page']
            session = _Session(pages[0]['webSocketDebuggerUrl'], deadline)
            try:
                for domain in ('Runtime', 'Log', 'Page'):
                    session.call(f'{domain}.enable')
                session.call('Page.navigate', url=url)
                session.wait_for('Page.loadEventFired')
                images = session.evaluate('Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, '
                                          'width: i.naturalWidth, height: i.naturalHeight}))')
                text = session.evaluate('document.body ? document.body.innerText : ""')
                height = session.evaluate('Math.ceil(document.documentElement.scrollHeight)')
                shot = session.call('Page.captureScreenshot', format='png', captureBeyondViewport=True,
                                    clip={'x': 0, 'y': 0, 'width': WIDTH, 'height': height, 'scale': 1})
                return Rendered(console_errors(session.events), images, text, base64.b64decode(shot['data']))
            finally:
                session.close()
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Ends the browser and its own helper processes (its renderers, the crash handler: the process group this
    browser leads, started in a session of its own), so that none writes into the profile being removed."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.time() + wait   # the group's other members end after the browser
        while time.time() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def blank(png: bytes) -> bool:
    """Whether a PNG is (nearly) one flat colour: its grey levels' standard deviation under 2 of 255."""
    from PIL import Image, ImageStat  # pylint: disable=import-outside-toplevel
    image = Image.open(io.BytesIO(png)).convert('L')
    return ImageStat.Stat(image).stddev[0] < 2.0
