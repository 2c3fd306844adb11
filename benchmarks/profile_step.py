"""Where one training step of our DIN (or DIEN) goes: the TensorFlow profiler's op times, by op type and by layer;
one JSON line (and a readable table on stderr).

    python benchmarks/profile_step.py --model din --workdir /tmp/bench            # the default data's arrays
    python benchmarks/profile_step.py --model din --workdir /tmp/bench --history_mean 12

The model, sizes and arrays are those of ``benchmarks/deepctr_compare.py`` (batch 256, history 50, embedding 18;
``--history_mean`` cuts the histories the same way). ``--steps`` training steps run under
``tf.profiler.experimental`` after three untraced ones; the XSpace the profiler writes is read back and every op's
duration summed. The figures are per step: ``wall_ms`` (the steps' wall time), ``op_ms`` (the ops' summed
durations, over both of TensorFlow's threads, so it can exceed the wall time), and the shares by op type and by
scope (``din/attention`` is the activation unit's forward pass, ``gradient_tape/din/attention`` its backward).
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import deepctr_compare  # pylint: disable=wrong-import-position


def op_times(logdir):
    """``{(op name, op type): summed ms}`` of the TensorFlow ops in the profile under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel
    times = collections.Counter()
    for path in glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True):
        space = xplane_pb2.XSpace()
        with open(path, 'rb') as f:
            space.ParseFromString(f.read())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith('tf_Compute'):
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ':' in name and not name.endswith(':Process'):   # Process: the executor's envelope
                        op_name, op_type = name.rsplit(':', 1)
                        times[(op_name, op_type)] += event.duration_ps / 1e9
    return times


def scope_of(op_name, depth=3):
    """The op's layer: its name's first ``depth`` parts, after ``gradient_tape/`` for the backward pass."""
    parts = op_name.split('/')
    head = 1 if parts[0] == 'gradient_tape' else 0
    return '/'.join(parts[:head + depth])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='din', choices=deepctr_compare.MODELS)
    parser.add_argument('--preset', default='default')
    parser.add_argument('--workdir', default=os.path.join('runs', 'bench'))
    parser.add_argument('--history_mean', type=float, default=0)
    parser.add_argument('--steps', type=int, default=20)
    args = parser.parse_args(argv)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from rec_models import registry  # pylint: disable=import-outside-toplevel
    os.makedirs(args.workdir, exist_ok=True)
    arrays = deepctr_compare.read_arrays(deepctr_compare.load_arrays(args.workdir, args.preset), args.history_mean)
    inputs, train = deepctr_compare.our_inputs(arrays)
    label, size = inputs.label, deepctr_compare.BATCH_SIZE
    tf.keras.utils.set_random_seed(0)
    model = registry.build(args.model, inputs, {'hidden_units': deepctr_compare.HIDDEN_UNITS,
                                                'dropout': deepctr_compare.DROPOUT})
    model.compile(optimizer=tf.keras.optimizers.Adam(deepctr_compare.LEARNING_RATE))
    batches = [({k: tf.constant(v[i * size:(i + 1) * size]) for k, v in train.items() if k != label},
                {label: tf.constant(train[label][i * size:(i + 1) * size].astype('float32'))})
               for i in range(args.steps + 3)]
    step = tf.function(lambda features, labels: model.train_step((features, labels)))
    for batch in batches[:3]:
        step(*batch)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for batch in batches[3:]:
            logs = step(*batch)
        float(logs['loss'])
        wall = (time.perf_counter() - start) / args.steps * 1000
        tf.profiler.experimental.stop()
        times = op_times(logdir)
    total = sum(times.values())
    by_type, by_scope = collections.Counter(), collections.Counter()
    for (op_name, op_type), ms in times.items():
        by_type[op_type] += ms
        by_scope[scope_of(op_name)] += ms

    def shares(counter, top=12):
        return {key: {'ms': round(ms / args.steps, 3), 'share': round(ms / total, 3)}
                for key, ms in counter.most_common(top)}

    result = {'benchmark': 'profile_step', 'model': args.model, 'history_mean': args.history_mean,
              'batch_size': size, 'steps': args.steps, 'wall_ms': round(wall, 2),
              'op_ms': round(total / args.steps, 2), 'examples_per_s': round(size / wall * 1000),
              'by_type': shares(by_type), 'by_scope': shares(by_scope)}
    for title, counter in (('op type', by_type), ('scope', by_scope)):
        print(f'| {title} | ms per step | share |\n|---|---|---|', file=sys.stderr)
        for key, value in shares(counter).items():
            print(f"| {key} | {value['ms']:.2f} | {100 * value['share']:.0f}% |", file=sys.stderr)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
