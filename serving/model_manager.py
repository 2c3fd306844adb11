"""Models and their versions: what is on disk, what is loaded, and which loaded version serves a request.

Sources, as TF Serving's: one model (``--model_name``/``--model_base_path``, see :func:`config_from_flags`) or a
``model_config_list`` text proto (:func:`read_config_file`), whose entries give ``name``, ``base_path``,
``model_version_policy`` (``latest {num_versions}``, default latest 1; ``specific {versions}``; ``all {}``) and
``version_labels``. A version is a directory ``<base_path>/<integer>`` holding a SavedModel.

A poll (:meth:`ModelManager.poll`, every ``--file_system_poll_wait_seconds`` on a thread) scans each base path:

* A version directory is *ready* once it holds ``saved_model.pb`` and ``variables/variables.index`` and its
  listing of (relative path, size) is the same as at the previous scan, so a push that copies files one by one is
  not loaded half-written. A version whose load failed waits for a retry (doubling backoff, or sooner when its
  files change); the failure is logged and never stops the server.
* A version is loaded from a private snapshot of its directory (hard links, or copies), so deleting or rewriting
  a pushed directory never breaks the loaded version while it still serves (its assets are read when a signature
  runs); the snapshot is deleted when the version is unloaded.
* The policy picks the wanted versions among the ready and loaded ones. Wanted versions not loaded yet are loaded
  (``tf.saved_model.load``, then the warmup requests of :mod:`serving.warmup`) and become AVAILABLE; a version
  that fails to load leaves its place to the next one the policy picks (so a broken push keeps the previous
  version serving, where TF Serving would unload it). Only then are the loaded versions the policy no longer
  wants removed from routing. A request holds the :class:`LoadedVersion` it resolved until it finishes
  (:meth:`ModelManager.acquire`), so no request fails during a swap; an unloaded version is UNLOADING until its
  last request ends, then END.

Each version's state (START: seen and wanted but not ready yet; LOADING; AVAILABLE; UNLOADING; END, with the
error of a failed load) is kept for ``GetModelStatus``, including the versions that were unloaded, as TF Serving
reports them. Version labels are resolved when a request names one: an unknown label is INVALID_ARGUMENT ("Unrecognized
servable version label"), a label of a version that is not AVAILABLE is NOT_FOUND (TF Serving refuses such a label
when the config is loaded, unless ``--allow_version_labels_for_unavailable_models``).
"""

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import errors
from serving import signatures
from serving import warmup

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State
VARIABLES_INDEX = os.path.join('variables', 'variables.index')
# Retry delays of a version whose load failed: doubling from the first to the last (seconds).
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# Pause between the two scans of the initial load (and of a config reload), so ready versions load at once.
SETTLE_SECONDS = 0.1

Listing = Tuple[Tuple[str, int], ...]


class ConfigError(ValueError):
    """A bad model source: the message names the flag, file or config field."""


def config_from_flags(model_name: str, model_base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The one-model config of ``--model_name``/``--model_base_path`` (policy: latest 1)."""
    if not model_name:
        raise ConfigError('--model_name is empty')
    if not tf.io.gfile.isdir(model_base_path):
        raise ConfigError(f'--model_base_path {model_base_path}: not a directory')
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=model_name, base_path=model_base_path, model_platform='tensorflow')
    return config


def read_config_file(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Reads and checks a ``ModelServerConfig`` text proto (``--model_config_file``)."""
    try:
        with tf.io.gfile.GFile(path) as f:
            text = f.read()
    except (OSError, tf.errors.OpError) as e:
        raise ConfigError(f'--model_config_file {path}: cannot read it: {e}') from e
    try:
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise ConfigError(f'--model_config_file {path}: {e}') from e
    validate_config(config, f'--model_config_file {path}')
    return config


def validate_config(config: model_server_config_pb2.ModelServerConfig, source: str) -> None:
    """Raises ConfigError naming ``source`` and the field when ``config`` cannot be served."""
    if config.WhichOneof('config') != 'model_config_list':
        raise ConfigError(f'{source}: only model_config_list is supported')
    if not config.model_config_list.config:
        raise ConfigError(f'{source}: model_config_list has no config entry')
    names = set()
    for i, model in enumerate(config.model_config_list.config):
        where = f'{source}: model_config_list.config[{i}]'
        if not model.name:
            raise ConfigError(f'{where}: name is empty')
        if model.name in names:
            raise ConfigError(f'{where}: model name {model.name!r} is listed twice')
        names.add(model.name)
        if model.model_platform not in ('', 'tensorflow'):
            raise ConfigError(f'{where}: model_platform {model.model_platform!r} is not supported (only "tensorflow")')
        policy = model.model_version_policy
        if policy.WhichOneof('policy_choice') == 'specific' and not policy.specific.versions:
            raise ConfigError(f'{where}: model_version_policy.specific has no versions')
        if not model.base_path:
            raise ConfigError(f'{where}: base_path is empty')
        if not tf.io.gfile.isdir(model.base_path):
            raise ConfigError(f'{where}: base_path {model.base_path} is not a directory')


def wanted_versions(policy, ready: Iterable[int]) -> Set[int]:
    """The versions a ``ServableVersionPolicy`` serves among ``ready`` (unset or ``latest`` 0 = latest 1)."""
    ready = sorted(ready)
    kind = policy.WhichOneof('policy_choice')
    if kind == 'all':
        return set(ready)
    if kind == 'specific':
        return set(ready) & set(policy.specific.versions)
    count = max(policy.latest.num_versions, 1) if kind == 'latest' else 1
    return set(ready[-count:])


class LoadedVersion:
    """One loaded SavedModel version; a request holds it (:meth:`ModelManager.acquire`) while it runs.

    Attributes:
        model_name: the model's name.
        version: the version number.
        path: the version directory.
        snapshot: the private copy it was loaded from (:func:`_snapshot`), deleted when it is unloaded.
        signatures: the signature functions by name.
        signature_defs: the SignatureDefs by name, as ``saved_model.pb`` has them (metadata, method names).
    """

    def __init__(self, model_name: str, version: int, path: str):
        self.model_name = model_name
        self.version = version
        self.path = path
        self.snapshot = _snapshot(path, f'{model_name}-{version}-')
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.snapshot, True)
        try:
            self._model = tf.saved_model.load(self.snapshot)
        except BaseException:
            self._cleanup()
            raise
        shutil.rmtree(os.path.join(self.snapshot, 'variables'), ignore_errors=True)   # restored: not read again
        self.signatures = dict(self._model.signatures)
        self.signature_defs = signatures.signature_defs(path)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._on_drained: Optional[Callable[[], None]] = None

    def hold(self) -> None:
        """Counts a request that runs on this version (the manager calls it while resolving the request)."""
        with self._lock:
            self._in_flight += 1

    def release(self) -> None:
        """Ends a request held by :meth:`hold`."""
        with self._lock:
            self._in_flight -= 1
            drained = self._on_drained if self._in_flight == 0 else None
        if drained is not None:
            drained()

    def retire(self, on_drained: Callable[[], None]) -> None:
        """Calls ``on_drained`` once no request holds this version (now, or when the last one ends), after
        deleting the snapshot."""
        def drained():
            self._cleanup()
            on_drained()

        with self._lock:
            if self._in_flight:
                self._on_drained = drained
                return
        drained()


def _snapshot(path: str, prefix: str) -> str:
    """A private copy of the version directory ``path`` the version is loaded from (hard links where the file
    system allows, copies otherwise, e.g. from another device or a remote path).

    Choice: a loaded TF2 SavedModel keeps reading its assets (Transform's vocabulary files initialise lookup
    tables when a signature runs), so a version served straight from the pushed directory fails every request once
    that directory is deleted or rewritten, until it is unloaded. TF Serving's loaded sessions do not read the
    directory again, and its policy serves on while the previous version loads; the snapshot gives the same here.
    Its variables are deleted once restored; the assets stay until the version is unloaded.
    """
    snapshot = tempfile.mkdtemp(prefix=prefix)
    try:
        for root, _, files in tf.io.gfile.walk(path):
            target_dir = os.path.join(snapshot, os.path.relpath(root, path))
            os.makedirs(target_dir, exist_ok=True)
            for name in files:
                source, target = os.path.join(root, name), os.path.join(target_dir, name)
                try:
                    os.link(source, target)
                except OSError:
                    tf.io.gfile.copy(source, target, overwrite=True)
    except BaseException:
        shutil.rmtree(snapshot, ignore_errors=True)
        raise
    return snapshot


@dataclasses.dataclass
class _Failure:
    listing: Listing
    attempts: int
    retry_at: float


@dataclasses.dataclass
class _Model:
    config: model_server_config_pb2.ModelConfig
    available: Dict[int, LoadedVersion] = dataclasses.field(default_factory=dict)
    listings: Dict[int, Listing] = dataclasses.field(default_factory=dict)
    failures: Dict[int, _Failure] = dataclasses.field(default_factory=dict)
    scan_problem: str = ''


@dataclasses.dataclass
class _VersionState:
    state: int
    error: Optional[errors.ServingError] = None


class ModelManager:
    """Loads, swaps and unloads model versions, and resolves requests to loaded versions.

    Args:
        config: the models (a ``ModelServerConfig`` with a ``model_config_list``; ConfigError if it cannot be served).
        inference: runs the warmup requests (:class:`serving.inference.Inference`).
        poll_wait_seconds: seconds between polls of the base paths; 0 polls once, at :meth:`start`.
    """

    def __init__(self, config: model_server_config_pb2.ModelServerConfig, inference, poll_wait_seconds: float = 1.0):
        if poll_wait_seconds < 0:
            raise ConfigError(f'--file_system_poll_wait_seconds must be >= 0, got {poll_wait_seconds}')
        validate_config(config, 'config')
        self._inference = inference
        self._poll_wait = poll_wait_seconds
        self._lock = threading.Lock()  # guards routing (_models' available versions) and _states
        self._scan_lock = threading.Lock()  # one scan at a time: poller, start, reload
        self._models = {model.name: _Model(model) for model in config.model_config_list.config}
        self._states: Dict[str, Dict[int, _VersionState]] = {}
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None

    def start(self) -> None:
        """Loads the versions ready now, then starts polling (unless the poll wait is 0)."""
        self._settled_poll()
        if self._poll_wait > 0:
            self._poller = threading.Thread(target=self._poll_loop, name='model-poller', daemon=True)
            self._poller.start()

    def stop(self) -> None:
        """Stops polling; loaded versions keep serving until the process ends."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join()

    def model_names(self) -> List[str]:
        with self._lock:
            return sorted(self._models)

    @contextlib.contextmanager
    def acquire(self, model_spec: model_pb2.ModelSpec) -> Iterator[LoadedVersion]:
        """The loaded version a request names, held until the ``with`` block ends.

        Raises:
            ServingError: NOT_FOUND when no such model or version is AVAILABLE; INVALID_ARGUMENT for an unknown
                version label (TF Serving's messages).
        """
        with self._lock:
            version = self._resolve(model_spec)
            version.hold()
        try:
            yield version
        finally:
            version.release()

    def status(self, model_spec: model_pb2.ModelSpec) -> get_model_status_pb2.GetModelStatusResponse:
        """``GetModelStatus``: the state of the named version, or of every version the model had, newest first."""
        with self._lock:
            states = self._states.get(model_spec.name, {})
            number = self._requested_version(model_spec)
            if number is not None:
                if number not in states:
                    raise errors.not_found(f'Could not find version {number} of model {model_spec.name}')
                states = {number: states[number]}
            elif not states:
                raise errors.not_found(f'Could not find any versions of model {model_spec.name}')
            response = get_model_status_pb2.GetModelStatusResponse()
            for version in sorted(states, reverse=True):
                entry = response.model_version_status.add(version=version, state=states[version].state)
                error = states[version].error
                entry.status.error_code = error.code_number if error else 0
                entry.status.error_message = error.message if error else ''
            return response

    def reload(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Replaces the model list (``HandleReloadConfigRequest``): new models are loaded before it returns,
        removed ones unloaded; kept models take the new policy, labels and base path.

        Raises:
            ConfigError: the config cannot be served; nothing changed.
        """
        validate_config(config, 'ReloadConfigRequest.config')
        with self._scan_lock:
            with self._lock:
                models = {}
                for model_config in config.model_config_list.config:
                    model = self._models.get(model_config.name) or _Model(model_config)
                    model.config = model_config
                    models[model_config.name] = model
                removed = [model for name, model in self._models.items() if name not in models]
                self._models = models
                retired = {model.config.name: model.available.copy() for model in removed}
                for model in removed:
                    model.available.clear()
            for model in removed:
                log.info('model %s: removed from the config', model.config.name)
                self._retire(model, list(retired[model.config.name].values()))
        self._settled_poll()

    def poll(self) -> bool:
        """Scans every base path once and loads, swaps and unloads versions accordingly.

        Returns:
            Whether some wanted version was seen that is not ready yet (a later scan may load it).
        """
        with self._scan_lock:
            with self._lock:
                models = list(self._models.values())
            waiting = False
            for model in models:
                try:
                    waiting |= self._scan(model)
                except Exception:  # pylint: disable=broad-except  (a poll never takes the server down)
                    log.exception('model %s: scan failed', model.config.name)
            return waiting

    def _settled_poll(self) -> None:
        if self.poll():
            time.sleep(SETTLE_SECONDS)
            self.poll()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait):
            self.poll()

    def _resolve(self, model_spec: model_pb2.ModelSpec) -> LoadedVersion:
        model = self._models.get(model_spec.name)
        available = model.available if model else {}
        number = self._requested_version(model_spec)
        if number is None:
            if available:
                return available[max(available)]
            raise errors.not_found(f'Servable not found for request: Latest({model_spec.name})')
        if number in available:
            return available[number]
        raise errors.not_found(f'Servable not found for request: Specific({model_spec.name}, {number})')

    def _requested_version(self, model_spec: model_pb2.ModelSpec) -> Optional[int]:
        choice = model_spec.WhichOneof('version_choice')
        if choice == 'version':
            return model_spec.version.value
        if choice == 'version_label':
            model = self._models.get(model_spec.name)
            labels = model.config.version_labels if model else {}
            if model_spec.version_label not in labels:
                raise errors.invalid_argument(f'Unrecognized servable version label: {model_spec.version_label}')
            return labels[model_spec.version_label]
        return None

    def _scan(self, model: _Model) -> bool:
        name, base_path = model.config.name, model.config.base_path
        try:
            on_disk = _version_dirs(base_path)
        except (OSError, tf.errors.OpError) as e:
            self._report_scan_problem(model, f'cannot list base path {base_path}: {e}')
            return False
        self._report_scan_problem(model, '' if on_disk else f'no version directories under base path {base_path}')
        with self._lock:
            loaded = {number: version for number, version in model.available.items()
                      if version.path == on_disk.get(number)}
        now = time.monotonic()
        listings, ready, complete = {}, set(loaded), set()
        for number, path in on_disk.items():
            if number in loaded:
                continue
            listing = listings[number] = _listing(path)
            if not _is_complete(listing):
                continue
            complete.add(number)
            failure = model.failures.get(number)
            if listing == model.listings.get(number) and (
                    failure is None or failure.listing != listing or now >= failure.retry_at):
                ready.add(number)
        model.listings = listings
        policy = model.config.model_version_policy
        waiting = wanted_versions(policy, ready | complete) - ready
        for number in waiting:
            self._set_state(name, number, State.START, only_if_new=True)
        failed = set()
        to_load = wanted_versions(policy, ready) - set(loaded)
        while to_load:  # a version that fails to load leaves its place to the next one the policy picks
            for number in sorted(to_load):
                version = self._load(model, number, on_disk[number], listings[number])
                if version is None:
                    failed.add(number)
                else:
                    loaded[number] = version
            to_load = wanted_versions(policy, ready - failed) - set(loaded)
        keep = wanted_versions(policy, ready - failed)
        with self._lock:
            retired = [version for number, version in model.available.items()
                       if number not in keep or loaded.get(number) is not version]
            for version in retired:
                del model.available[version.version]
            for number, state in self._states.get(name, {}).items():
                if state.state == State.START and number not in waiting:  # no longer wanted, or gone
                    state.state = State.END
        self._retire(model, retired)
        return bool(waiting)

    def _load(self, model: _Model, number: int, path: str, listing: Listing) -> Optional[LoadedVersion]:
        name = model.config.name
        self._set_state(name, number, State.LOADING)
        start = time.monotonic()
        try:
            version = LoadedVersion(name, number, path)
            warmup_count = warmup.warm_up(version, self._inference)
        except Exception as e:  # pylint: disable=broad-except  (a failed load is reported and retried)
            error = errors.from_exception(e)
            previous = model.failures.get(number)
            attempts = previous.attempts + 1 if previous else 1
            delay = min(RETRY_FIRST_SECONDS * 2 ** (attempts - 1), RETRY_MAX_SECONDS)
            model.failures[number] = _Failure(listing, attempts, time.monotonic() + delay)
            self._set_state(name, number, State.END, error)
            log.error('model %s version %d: load failed (attempt %d; retry in %.0f s or when its files change): %s',
                      name, number, attempts, delay, error.one_line())
            return None
        model.failures.pop(number, None)
        with self._lock:
            model.available[number] = version
            self._states.setdefault(name, {})[number] = _VersionState(State.AVAILABLE)
        log.info('model %s version %d: AVAILABLE (%s, %d warmup requests, %.2f s)', name, number, path,
                 warmup_count, time.monotonic() - start)
        return version

    def _retire(self, model: _Model, versions: List[LoadedVersion]) -> None:
        """Marks versions already removed from routing UNLOADING, and END once their last request ended."""
        name = model.config.name
        for version in versions:
            self._set_state(name, version.version, State.UNLOADING)
            log.info('model %s version %d: unloading', name, version.version)
            version.retire(lambda number=version.version: self._finish_unload(name, number))

    def _finish_unload(self, name: str, number: int) -> None:
        with self._lock:
            state = self._states.get(name, {}).get(number)
            if state is not None and state.state == State.UNLOADING:
                state.state = State.END
                log.info('model %s version %d: unloaded', name, number)

    def _set_state(self, name: str, number: int, state: int, error: Optional[errors.ServingError] = None,
                   only_if_new: bool = False) -> None:
        with self._lock:
            states = self._states.setdefault(name, {})
            if not (only_if_new and number in states):
                states[number] = _VersionState(state, error)

    @staticmethod
    def _report_scan_problem(model: _Model, problem: str) -> None:
        """Logs a base path problem when it appears or changes (not at every poll)."""
        if problem and problem != model.scan_problem:
            log.warning('model %s: %s', model.config.name, problem)
        model.scan_problem = problem


def _version_dirs(base_path: str) -> Dict[int, str]:
    """The version directories under ``base_path`` by number (names that are non-negative integers)."""
    versions = {}
    for entry in tf.io.gfile.listdir(base_path):
        entry = entry.rstrip('/')
        path = os.path.join(base_path, entry)
        if entry.isdigit() and tf.io.gfile.isdir(path):
            versions[int(entry)] = path
    return versions


def _listing(path: str) -> Optional[Listing]:
    """The sorted (relative path, size) of every file under ``path``; None when it changed while being listed."""
    entries = []
    try:
        for root, _, files in tf.io.gfile.walk(path):
            for file_name in files:
                file_path = os.path.join(root, file_name)
                entries.append((os.path.relpath(file_path, path), tf.io.gfile.stat(file_path).length))
    except (OSError, tf.errors.OpError):
        return None
    return tuple(sorted(entries))


def _is_complete(listing: Optional[Listing]) -> bool:
    names = {name for name, _ in listing or ()}
    return signatures.SAVED_MODEL_FILE in names and VARIABLES_INDEX in names
