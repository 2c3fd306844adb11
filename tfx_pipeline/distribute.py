"""Training on several workers: the ``tf.distribute`` strategy a Trainer process gets from ``TF_CONFIG``.

``TF_CONFIG`` is the JSON every TensorFlow cluster launcher sets (Vertex AI, the Kubeflow TFJob, a shell script):
``{"cluster": {"worker": ["host:port", …], "chief": [...], "ps": [...]}, "task": {"type": "worker", "index": 0}}``.

* Absent or empty: one process, the default strategy; :func:`strategy_from_tf_config` returns it and the Trainer
  runs exactly as it always did.
* ``chief`` and/or ``worker`` tasks, no ``ps``: ``tf.distribute.MultiWorkerMirroredStrategy`` (synchronous
  data-parallel training; every worker holds the whole model; gradients are all-reduced each step with the
  collective implementation AUTO, ring all-reduce over gRPC on CPUs).
* ``ps`` tasks: ``tf.distribute.ParameterServerStrategy`` (PSS), TensorFlow's design for it. The cluster needs one
  ``chief`` and at least one ``worker``. The ``chief`` task is the coordinator: it builds the model (its variables
  live on the ``ps`` tasks), runs Keras ``fit``, which schedules each step on a free worker, and is the only task that
  exports, writes TensorBoard logs and sample predictions (under PSS only the coordinator saves: TensorFlow's rule,
  unlike MultiWorkerMirroredStrategy). ``worker`` and ``ps`` tasks only run a ``tf.distribute.Server``
  (:func:`serve`): ``run_fn`` blocks there and never returns; the cluster launcher (Vertex AI, a TFJob) ends them
  when the chief ends, a script must kill them itself. :func:`strategy_from_tf_config` on such a task is a
  ValueError. What PSS training is here (:func:`parameter_server_data`, ``trainer.train``):

  - Choice: no ``variable_partitioner``: every variable, embedding tables included, lives whole on one ``ps`` task
    (round-robin over the ``ps`` tasks). Measured: with a ``MinSizePartitioner`` the tables are ``ShardedVariable``
    objects, which ``FieldEmbedding``'s ``tf.gather`` of ``[B, L]`` sequence ids refuses ("ShardedVariable: indices
    must be 1D Tensor for sparse operations"), and an export would name their variables ``…/embeddings/part_0``
    (FNN's warm start reads an export's variables by name). So a table must fit in one ``ps`` task's memory; the gain
    over MultiWorkerMirroredStrategy is that workers hold no copy of the model and train asynchronously.
  - Data: ``fit`` takes a ``DatasetCreator``; each worker reads its shard of the records (``Dataset.shard`` by the
    worker's input pipeline id, before the shuffle), repeated without end. A step is one batch of
    ``training.batch_size`` rows on one worker, applied to the ``ps`` variables asynchronously (no two runs alike).
    ``steps_per_epoch`` is the train split's transformed records over the batch size, rounded up; Choice: the
    coordinator counts the transformed records once (:func:`count_records`, one read of the files; StatisticsGen's
    count is not in ``run_fn``'s arguments, and the console's count is set only in a CLI run).
    ``validation_steps``: the same for the eval split. An "epoch" is thus that many steps, not one exact pass: a
    faster worker takes more steps, from its own shard.
  - Early stopping works on those epochs (the eval metrics are variables on the ``ps`` tasks, updated by every
    worker's eval steps). Keras refuses batch-level callbacks under PSS: the progress bar moves once per epoch and the
    non-finite loss check reads the epoch's mean loss (``trainer.EpochOnlyProgress``, ``trainer.EpochLossGuard``).
  - Layer state: Dice's moving moments are ``ps`` variables that every worker's step assigns (last write wins, no
    averaging); a step counter is incremented by every step.
  - Retrieval models are refused as under MultiWorkerMirroredStrategy (``trainer`` raises NotImplementedError).

The chief (:func:`is_chief`) is the ``chief`` task, or ``worker`` 0 when the cluster has no chief. Under
MultiWorkerMirroredStrategy every worker runs the same code, exports included: saving may run collectives, so a worker
that skipped it would leave the others waiting (TensorFlow's rule for MultiWorkerMirroredStrategy). A non-chief worker
writes what the chief writes for good (the SavedModel, TensorBoard logs, sample predictions) into a scratch directory
that is deleted at the end (:func:`worker_dir`).

Datasets under MultiWorkerMirroredStrategy (:func:`for_workers`). Choice: the training config's ``batch_size`` is the
global batch, split in equal parts over the workers (it must be a multiple of their number); the data is sharded with
``AutoShardPolicy.DATA``: every worker reads every record (the same shuffle, by the same seed) and keeps its part of
each global batch, so step k trains on the very rows one process would train on at step k (FILE sharding would give each
worker other files, and fails when Transform wrote one file). The loss each worker minimises is divided by the number of
workers (:meth:`rec_models.base.RankingModel.train_step`), so that the summed gradients are the global batch's mean
gradient. What stays different from one process: Dice's training-time batch moments are each part's (as batch
normalisation without synchronisation), its moving moments average the parts' (see :func:`synchronised_state`), and the
mini-batch-aware L2 penalises the rows of each worker's part (a row in two parts counts twice). A last batch with fewer
rows than workers is dropped (a worker's empty part would have a NaN mean loss); a last batch with more is split as
evenly as it goes. The eval split is sharded the same way; its metrics (the AUC's confusion counts, the mean loss) are
all-reduced, so early stopping reads the same value on every worker and stops them all at the same epoch. Every worker
seeds TensorFlow with ``training.seed``: its shuffle must be the others' for the parts to partition each batch (initial
weights are broadcast from worker 0 anyway: measured, workers seeded differently still end with the same weights).
Measured (DIN on the tiny set, one epoch of 31 steps, dropout off, two workers against one process): the same initial
weights, trained weights within 0.003.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import tensorflow as tf

TF_CONFIG = 'TF_CONFIG'
CHIEF, WORKER, PS = 'chief', 'worker', 'ps'
JOBS = (CHIEF, WORKER, PS)
SCRATCH_PREFIX = 'worker_scratch_'   # a non-chief worker's scratch directories (tempfile's directory)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A parsed ``TF_CONFIG``: ``jobs`` (job name → task addresses) and this process's task."""
    jobs: Mapping[str, Tuple[str, ...]]
    task_type: str
    task_index: int

    @property
    def is_chief(self) -> bool:
        return self.task_type == CHIEF or (self.task_type == WORKER and self.task_index == 0 and
                                           CHIEF not in self.jobs)

    @property
    def has_ps(self) -> bool:
        return PS in self.jobs

    @property
    def num_workers(self) -> int:
        """The processes that train (chief and workers)."""
        return len(self.jobs.get(CHIEF, ())) + len(self.jobs.get(WORKER, ()))


def read_tf_config(env: Mapping[str, str] = os.environ) -> Optional[Cluster]:
    """The cluster ``TF_CONFIG`` describes, None when it is absent or empty (one process); ValueError naming
    TF_CONFIG and the problem when it is malformed."""
    text = env.get(TF_CONFIG, '').strip()
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'{TF_CONFIG} is not JSON ({e}): {text[:200]!r}') from e
    if not isinstance(config, dict):
        raise ValueError(f'{TF_CONFIG} must be a JSON object with "cluster" and "task", got {text[:200]!r}')
    if not config.get('cluster'):   # {} or {"task": …} alone: one process, as TensorFlow reads it
        return None
    jobs = _jobs(config['cluster'])
    task = config.get('task')
    if not isinstance(task, dict) or 'type' not in task:
        raise ValueError(f'{TF_CONFIG}: "task" must be an object {{"type": …, "index": …}} naming this process\'s '
                         f'task in the cluster, got {task!r}')
    task_type, index = task['type'], task.get('index', 0)
    if task_type not in jobs:
        raise ValueError(f'{TF_CONFIG}: task type {task_type!r} is not a job of the cluster {sorted(jobs)}')
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[task_type]):
        raise ValueError(f'{TF_CONFIG}: task index {index!r} is out of range: the cluster has '
                         f'{len(jobs[task_type])} {task_type!r} task(s)')
    return Cluster(jobs, task_type, index)


def _jobs(cluster) -> Dict[str, Tuple[str, ...]]:
    if not isinstance(cluster, dict):
        raise ValueError(f'{TF_CONFIG}: "cluster" must map job names to lists of "host:port", got {cluster!r}')
    unknown = sorted(set(cluster) - set(JOBS))
    if unknown:
        raise ValueError(f'{TF_CONFIG}: unsupported job(s) {unknown} in "cluster"; the Trainer knows {list(JOBS)} '
                         '(an evaluator runs as the pipeline\'s Evaluator component)')
    jobs = {}
    for name, addresses in cluster.items():
        if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)) or not addresses or not all(
                isinstance(a, str) and a.rpartition(':')[0] and a.rpartition(':')[2].isdigit() for a in addresses):
            raise ValueError(f'{TF_CONFIG}: cluster job {name!r} must be a non-empty list of "host:port" strings, '
                             f'got {addresses!r}')
        if len(set(addresses)) != len(addresses):
            raise ValueError(f'{TF_CONFIG}: cluster job {name!r} lists an address twice: {addresses!r}')
        jobs[name] = tuple(addresses)
    if len(jobs.get(CHIEF, ())) > 1:
        raise ValueError(f'{TF_CONFIG}: a cluster has one chief at most, got {list(jobs[CHIEF])}')
    if CHIEF not in jobs and WORKER not in jobs:
        raise ValueError(f'{TF_CONFIG}: the cluster has no "chief" or "worker" task to train')
    if PS in jobs and (CHIEF not in jobs or WORKER not in jobs):
        raise ValueError(f'{TF_CONFIG}: a cluster with "ps" tasks (ParameterServerStrategy) needs a "chief" task (the '
                         f'coordinator, which runs fit and exports) and at least one "worker", got jobs {sorted(jobs)}')
    return jobs


def strategy_from_tf_config(env: Mapping[str, str] = os.environ) -> tf.distribute.Strategy:
    """The strategy ``TF_CONFIG`` asks for (module docstring): the default strategy without one,
    MultiWorkerMirroredStrategy for chief/worker tasks, ParameterServerStrategy on the chief of a cluster with ``ps``
    tasks. Create it before any other TensorFlow work in the process: it starts this task's gRPC server (and
    MultiWorkerMirroredStrategy's collectives), and it waits for the other tasks.

    Raises:
        ValueError: TF_CONFIG is malformed, or names a ``worker``/``ps`` task of a cluster with ``ps`` tasks (such a
            task runs :func:`serve`, see :func:`runs_server`).
    """
    cluster = read_tf_config(env)
    if cluster is None:
        return tf.distribute.get_strategy()
    if runs_server(cluster):
        raise ValueError(f'{TF_CONFIG}: task {cluster.task_type!r} {cluster.task_index} of a cluster with "ps" tasks '
                         'runs a server (distribute.serve), not a strategy: only the chief trains')
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({name: list(addresses) for name, addresses in cluster.jobs.items()}),
        task_type=cluster.task_type, task_id=cluster.task_index, rpc_layer='grpc')
    if cluster.has_ps:
        return tf.distribute.ParameterServerStrategy(resolver)   # no variable_partitioner: module docstring
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)


def runs_server(cluster: Optional[Cluster]) -> bool:
    """Whether this task only serves (:func:`serve`): a ``worker`` or ``ps`` task of a cluster with ``ps`` tasks."""
    return cluster is not None and cluster.has_ps and cluster.task_type != CHIEF


def serve(env: Mapping[str, str] = os.environ) -> None:
    """Runs this task's ``tf.distribute.Server`` and blocks for good (a ``worker`` or ``ps`` task under
    ParameterServerStrategy: the coordinator sends it variables and steps; the launcher ends it). ValueError naming
    TF_CONFIG when it names no such task."""
    cluster = read_tf_config(env)
    if not runs_server(cluster):
        raise ValueError(f'{TF_CONFIG}: only a "worker" or "ps" task of a cluster with "ps" tasks runs a server')
    server = tf.distribute.Server(
        tf.train.ClusterSpec({name: list(addresses) for name, addresses in cluster.jobs.items()}),
        job_name=cluster.task_type, task_index=cluster.task_index, protocol='grpc', start=True)
    server.join()


def is_distributed(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """Whether ``strategy`` is this module's MultiWorkerMirroredStrategy (not None, not the default strategy, not
    ParameterServerStrategy: :func:`is_parameter_server`)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_parameter_server(strategy: Optional[tf.distribute.Strategy]) -> bool:
    """Whether ``strategy`` is a ParameterServerStrategy (the chief's, in a cluster with ``ps`` tasks)."""
    return isinstance(strategy, tf.distribute.ParameterServerStrategy)


def is_chief(env: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is the chief: the ``chief`` task, or ``worker`` 0 in a cluster without one; True in one
    process. ValueError when TF_CONFIG is malformed."""
    cluster = read_tf_config(env)
    return cluster is None or cluster.is_chief


@contextlib.contextmanager
def worker_dir(path: str, chief: bool) -> Iterator[str]:
    """``path`` on the chief; elsewhere a new scratch directory, deleted on exit (module docstring: every worker
    writes what the chief writes, only the chief's stays)."""
    if chief:
        yield path
        return
    scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
    try:
        yield os.path.join(scratch, os.path.basename(path.rstrip('/')) or 'out')
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_batch_size(batch_size: int, strategy: tf.distribute.Strategy) -> None:
    """ValueError naming ``training.batch_size`` unless it splits into equal parts over the workers."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f'training.batch_size {batch_size} is not a multiple of the {replicas} workers in '
                         f'{TF_CONFIG}: the batch size is the global batch, split in equal parts over the workers')


def for_workers(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy) -> tf.data.Dataset:
    """A dataset of global batches ``(features, labels)`` made ready for ``fit`` under ``strategy``: sharded by
    DATA, a last batch with fewer rows than workers dropped (module docstring)."""
    replicas = strategy.num_replicas_in_sync

    def rows(features, labels):
        first = next(iter(labels.values())) if labels else next(iter(features.values()))
        return tf.shape(first)[0] >= replicas

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.filter(rows).with_options(options)


def _synchronised(next_creator, **kwargs):
    """A non-trainable float variable created with a dtype and without an aggregation (a Keras layer's state) gets
    MEAN aggregation; every other variable is created as asked."""
    dtype = kwargs.get('dtype')
    written_on_every_worker = kwargs.get('synchronization') in (None, tf.VariableSynchronization.AUTO,
                                                                 tf.VariableSynchronization.ON_WRITE)
    if not kwargs.get('trainable', True) and dtype is not None and tf.as_dtype(dtype).is_floating and \
            kwargs.get('aggregation') in (None, tf.VariableAggregation.NONE) and written_on_every_worker:
        kwargs['aggregation'] = tf.VariableAggregation.MEAN
    return next_creator(**kwargs)


@contextlib.contextmanager
def synchronised_state(strategy: Optional[tf.distribute.Strategy]) -> Iterator[None]:
    """Under MultiWorkerMirroredStrategy: its scope, in which a non-trainable variable created without an aggregation
    (Dice's moving moments, a step counter) is created with MEAN aggregation, so that an update a layer makes in
    training is averaged over the workers and every worker keeps the same value (without an aggregation, each
    worker would keep its own part's statistics). Under ParameterServerStrategy: its scope alone (one copy of each
    variable, on a ``ps`` task: module docstring). Nothing (the current scope) otherwise.

    Choice: MEAN over ONLY_FIRST_REPLICA: a moving mean of the parts' means is the global batch's mean, as in one
    process; a counter incremented by 1 on every worker still moves by 1.
    """
    if is_parameter_server(strategy):   # the variables on the ps tasks; their state as the module docstring says
        with strategy.scope():
            yield
        return
    if not is_distributed(strategy):
        yield
        return
    with strategy.scope(), tf.variable_creator_scope(_synchronised):
        yield


def count_records(file_patterns: List[str]) -> int:
    """The records in Transform's gzipped TFRecord files matching ``file_patterns`` (one read of them)."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    return int(tf.data.TFRecordDataset(files, compression_type='GZIP').reduce(
        tf.constant(0, tf.int64), lambda count, _: count + 1))


def steps_over(records: int, batch_size: int) -> int:
    """The steps of one pass over ``records`` records in batches of ``batch_size`` (the last one partial), 1 at
    least."""
    return max(1, -(-records // batch_size))


def parameter_server_data(make_dataset: Callable[[Tuple[int, int]], tf.data.Dataset]
                          ) -> tf.keras.utils.experimental.DatasetCreator:
    """What ``fit`` reads under ParameterServerStrategy: on each worker, ``make_dataset((shards, index))`` (that
    worker's shard of the records), repeated without end (module docstring)."""
    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_dataset((context.num_input_pipelines, context.input_pipeline_id)).repeat()
    return tf.keras.utils.experimental.DatasetCreator(dataset_fn)
