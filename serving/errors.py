"""The server's error: a gRPC status code and a message, as TF Serving returns them.

Every failure a request can meet ends as a :class:`ServingError`: the server's own checks raise it directly, and
:func:`from_exception` converts the rest. TensorFlow's error codes are gRPC's codes (``tf.errors.InvalidArgumentError``
is ``INVALID_ARGUMENT``), so a failing model call keeps its code and TensorFlow's message; anything else is a bug
on our side and becomes ``INTERNAL``.
"""

import grpc
import tensorflow as tf

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failure with the gRPC status code TF Serving gives for it.

    Attributes:
        code: the ``grpc.StatusCode``.
        message: the message returned to the client.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def code_number(self) -> int:
        """The numeric code, which is also ``tensorflow.error.Code`` (``StatusProto.error_code``)."""
        return self.code.value[0]

    def one_line(self) -> str:
        """``CODE: message`` on one line, for the log."""
        return f'{self.code.name}: ' + ' '.join(self.message.split())


def invalid_argument(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def resource_exhausted(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def internal(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INTERNAL, message)


def from_exception(error: BaseException) -> ServingError:
    """The :class:`ServingError` for ``error``: itself, the code of a TensorFlow error, or ``INTERNAL``."""
    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        return ServingError(_CODES.get(error.error_code, grpc.StatusCode.UNKNOWN), error.message)
    return internal(f'{type(error).__name__}: {error}')
