"""``GetModelMetadata``: the SignatureDefs of a loaded version, as TF Serving returns them (gRPC and REST)."""

from tensorflow_serving.apis import get_model_metadata_pb2

from serving import errors

SIGNATURE_DEF = 'signature_def'


def get_model_metadata(manager, request: get_model_metadata_pb2.GetModelMetadataRequest
                       ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The response for ``request``: ``metadata["signature_def"]`` is a ``SignatureDefMap`` packed in an Any, and
    ``model_spec`` names the model and version that answered (no signature name, as in TF Serving).

    Args:
        manager: the :class:`serving.model_manager.ModelManager` that resolves the model spec.
        request: the request; ``metadata_field`` must list ``signature_def`` only.
    """
    if not request.HasField('model_spec'):
        raise errors.invalid_argument('Missing ModelSpec')
    if not request.metadata_field:
        raise errors.invalid_argument('GetModelMetadataRequest must specify at least one metadata_field')
    for field in request.metadata_field:
        if field != SIGNATURE_DEF:
            raise errors.invalid_argument(f'Metadata field {field} is not supported')
    with manager.acquire(request.model_spec) as version:
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in version.signature_defs.items():
            signature_def_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = version.model_name
        response.model_spec.version.value = version.version
    response.metadata[SIGNATURE_DEF].Pack(signature_def_map)
    return response
