"""Runs the spec's Transform with tf.Transform on Beam's DirectRunner, outside TFX.

The same ``preprocessing_fn`` the pipeline's Transform component runs, for tests and benchmarks that need
transformed data without a whole pipeline: analyse the train split, transform every split, write transformed
tf.Examples and the transform graph (``transform_output``), as the component does.
"""

import os
import tempfile
from typing import Dict

import apache_beam as beam
import tensorflow_transform.beam as tft_beam
from tfx_bsl.public import tfxio

from feature_spec import schema as schema_lib
from feature_spec import spec as spec_lib
from feature_spec.transform import build_preprocessing_fn

TRANSFORM_OUTPUT = 'transform_output'
TRANSFORMED = 'transformed'


def run_transform(spec: spec_lib.FeatureSpec, split_patterns: Dict[str, str], output_dir: str,
                  data_format: str = schema_lib.TFRECORD, analyze_split: str = 'train') -> Dict[str, str]:
    """Analyses ``analyze_split`` and transforms every split.

    Returns:
      split → file pattern of its transformed tf.Examples (gzipped TFRecord) under ``output_dir/transformed``;
      the transform graph is in ``output_dir/transform_output``.
    """
    if data_format != schema_lib.TFRECORD:
        raise ValueError('run_transform reads TFRecord; CSV goes through the pipeline\'s CsvExampleGen')
    raw_schema = schema_lib.schema(spec, data_format)
    os.makedirs(output_dir, exist_ok=True)
    outputs = {}
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(['--runner=DirectRunner'])) as pipeline:
        with tft_beam.Context(temp_dir=tempfile.mkdtemp(dir=output_dir)):
            raw = {split: _read(pipeline, split, pattern, raw_schema) for split, pattern in split_patterns.items()}
            tensor_adapter_config = next(iter(raw.values()))[1]
            transform_fn = ((raw[analyze_split][0], tensor_adapter_config)
                            | 'Analyze' >> tft_beam.AnalyzeDataset(build_preprocessing_fn(spec)))
            transform_fn | 'WriteTransformFn' >> tft_beam.WriteTransformFn(os.path.join(output_dir, TRANSFORM_OUTPUT))
            for split, (records, config) in raw.items():
                transformed, metadata = (((records, config), transform_fn)
                                         | f'Transform[{split}]' >> tft_beam.TransformDataset(output_record_batches=True))
                prefix = os.path.join(output_dir, TRANSFORMED, split, 'part')
                _ = (transformed
                     | f'ToExamples[{split}]' >> beam.FlatMapTuple(lambda batch, _: _record_batch_to_examples(batch))
                     | f'Write[{split}]' >> beam.io.WriteToTFRecord(prefix, file_name_suffix='.gz'))
                outputs[split] = prefix + '*'
    return outputs


def _read(pipeline, split, pattern, raw_schema):
    source = tfxio.TFExampleRecord(file_pattern=pattern, schema=raw_schema)
    return pipeline | f'Read[{split}]' >> source.BeamSource(), source.TensorAdapterConfig()


def _record_batch_to_examples(record_batch):
    from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top
    return example_coder.RecordBatchToExamples(record_batch)
