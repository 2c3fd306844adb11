"""The synthetic e-commerce click log with known ground truth (README.md, "The synthetic data").

    from tfx_pipeline import data
    dataset = data.generate(data.PRESETS['tiny'])          # in memory, NumPy only
    data.write(dataset, 'data/tiny')                        # TFRecord + CSV + metadata.json
    python -m tfx_pipeline.data --preset default --out data/default

Importing this package does not import TensorFlow (only the TFRecord writer does).
"""

from tfx_pipeline.data.synthetic import (COLUMNS, FLOAT_COLUMNS, GROUND_TRUTH_COLUMNS, INT_COLUMNS, ITEM_FEED_COLUMNS,
                                         ITEMS, LIST_COLUMNS, LIST_GROUPS, PRESETS, SPLITS, ConfigError, Dataset,
                                         GeneratorConfig, Ragged, generate, generate_chunks, item_feed, padded,
                                         summarize, summary_columns, take_rows)
from tfx_pipeline.data.writers import (FORMATS, csv_bytes, generate_and_write, serialize_examples, write,
                                       write_item_feed)

__all__ = ['COLUMNS', 'FLOAT_COLUMNS', 'FORMATS', 'GROUND_TRUTH_COLUMNS', 'INT_COLUMNS', 'ITEMS', 'ITEM_FEED_COLUMNS',
           'LIST_COLUMNS', 'LIST_GROUPS', 'PRESETS', 'SPLITS', 'ConfigError', 'Dataset', 'GeneratorConfig', 'Ragged',
           'csv_bytes', 'generate', 'generate_and_write', 'generate_chunks', 'item_feed', 'padded',
           'serialize_examples', 'summarize', 'summary_columns', 'take_rows', 'write', 'write_item_feed']
