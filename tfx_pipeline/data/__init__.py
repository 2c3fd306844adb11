"""The synthetic e-commerce click log with known ground truth (README.md, "The synthetic data").

    from tfx_pipeline import data
    dataset = data.generate(data.PRESETS['tiny'])          # in memory, NumPy only
    data.write(dataset, 'data/tiny')                        # TFRecord + CSV + metadata.json
    python -m tfx_pipeline.data --preset default --out data/default

Importing this package does not import TensorFlow (only the TFRecord writer does).
"""

from tfx_pipeline.data.synthetic import (COLUMNS, FLOAT_COLUMNS, GROUND_TRUTH_COLUMNS, INT_COLUMNS, LIST_COLUMNS,
                                         LIST_GROUPS, PRESETS, SPLITS, ConfigError, Dataset, GeneratorConfig, Ragged, generate,
                                         generate_chunks, padded, summarize, summary_columns, take_rows)
from tfx_pipeline.data.writers import FORMATS, csv_bytes, generate_and_write, serialize_examples, write

__all__ = ['COLUMNS', 'FLOAT_COLUMNS', 'FORMATS', 'GROUND_TRUTH_COLUMNS', 'INT_COLUMNS', 'LIST_COLUMNS', 'LIST_GROUPS',
           'PRESETS', 'SPLITS', 'ConfigError', 'Dataset', 'GeneratorConfig', 'Ragged', 'csv_bytes', 'generate',
           'generate_and_write', 'generate_chunks', 'padded', 'serialize_examples', 'summarize', 'summary_columns',
           'take_rows', 'write']
