"""SchemaGen from the feature spec: the raw data's schema (:func:`feature_spec.schema.schema`), written when the
component runs, so that ExampleValidator checks the data against what the spec declares rather than against what
the data happens to hold.

It runs where the other components run (in this process, or in the container of a Kubeflow task, which reads the
spec from the image), so no file written when the pipeline was built has to travel with it.
"""

import os

from tfx import v1 as tfx

SCHEMA_FILE = 'schema.pbtxt'


@tfx.dsl.components.component
def SpecSchemaGen(feature_spec: tfx.dsl.components.Parameter[str], data_format: tfx.dsl.components.Parameter[str],  # pylint: disable=invalid-name
                  schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema]):
    """Writes ``schema.pbtxt`` (the only file of the Schema artifact, where TFX's readers look) for the spec at
    ``feature_spec`` and the raw ``data_format``."""
    from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
    from feature_spec import schema as schema_lib  # pylint: disable=g-import-not-at-top
    from feature_spec import spec as spec_lib  # pylint: disable=g-import-not-at-top
    io_utils.write_pbtxt_file(os.path.join(schema.uri, SCHEMA_FILE),
                              schema_lib.schema(spec_lib.load(feature_spec), data_format))
