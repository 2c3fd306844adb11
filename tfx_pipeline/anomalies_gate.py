"""A component that stops the pipeline when ExampleValidator found anomalies, with a readable report."""

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils


class DataAnomaliesError(RuntimeError):
    """The data does not match the schema generated from the feature spec."""


def anomaly_report(anomalies_uri: str, split_names: str) -> str:
    """One line per anomalous feature and split: ``split/feature: what is wrong``; empty when all is well."""
    lines = []
    for split in artifact_utils.decode_split_names(split_names):
        path = os.path.join(anomalies_uri, f'Split-{split}', 'SchemaDiff.pb')
        anomalies = anomalies_pb2.Anomalies()
        with open(path, 'rb') as f:
            anomalies.ParseFromString(f.read())
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = '; '.join(f'{r.short_description}: {r.description}' for r in info.reason)
            lines.append(f'{split}/{feature}: {reasons or info.description}')
        if anomalies.HasField('dataset_anomaly_info'):
            reasons = '; '.join(r.description for r in anomalies.dataset_anomaly_info.reason)
            lines.append(f'{split}/(data set): {reasons}')
    return '\n'.join(lines)


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]):  # pylint: disable=invalid-name
    """Raises DataAnomaliesError naming each anomalous feature; passes silently otherwise."""
    report = anomaly_report(anomalies.uri, anomalies.split_names)
    if report:
        raise DataAnomaliesError('the data does not match the feature spec:\n' + report)
