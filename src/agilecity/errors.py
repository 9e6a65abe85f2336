"""The exception tree of AgileCity; each API family renders it in its own error format.

    AgileCityError                     status, NGSI-LD error type, user-safe title and detail
    ├── InvalidRequestError            400  InvalidRequest (malformed JSON, wrong media type use)
    ├── BadRequestDataError            400  BadRequestData (well-formed but wrong content)
    ├── UnsupportedMediaTypeError      415  (Content-Type not one the API accepts)
    ├── NotAcceptableError             406  (Accept lists nothing the API can produce)
    ├── PayloadTooLargeError           413  (request body over the configured limit)
    ├── TooManyResultsError            403  TooManyResults (limit above the configured maximum)
    ├── ResourceNotFoundError          404  ResourceNotFound
    ├── NonexistentTenantError         404  NonexistentTenant
    ├── AlreadyExistsError             409  AlreadyExists
    ├── OperationNotSupportedError     422  OperationNotSupported
    ├── LdContextNotAvailableError     503  LdContextNotAvailable
    └── InternalError                  500  InternalError (never carries internal details)

Domain code raises these; it never builds HTTP responses itself.
"""

from __future__ import annotations

NGSI_LD_ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


class AgileCityError(Exception):
    """Base of every error the platform reports to a client."""

    status = 500
    error_type = "InternalError"
    title = "Internal error"

    def __init__(self, detail: str = "", *, title: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        if title is not None:
            self.title = title

    @property
    def type_uri(self) -> str:
        """The ETSI NGSI-LD error type URI."""
        return NGSI_LD_ERRORS + self.error_type

    def problem(self) -> dict[str, object]:
        """ProblemDetails (RFC 9457) body with the NGSI-LD error type and the HTTP status."""
        body: dict[str, object] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        return body


class InvalidRequestError(AgileCityError):
    """The request is not well formed (for example, its body is not JSON)."""

    status = 400
    error_type = "InvalidRequest"
    title = "Invalid request"


class BadRequestDataError(AgileCityError):
    """The request is well formed but its content breaks the NGSI-LD rules."""

    status = 400
    error_type = "BadRequestData"
    title = "Bad request data"


class UnsupportedMediaTypeError(AgileCityError):
    """The request's Content-Type is not accepted by this operation."""

    status = 415
    error_type = "InvalidRequest"
    title = "Unsupported media type"


class NotAcceptableError(AgileCityError):
    """None of the media types in Accept can be produced."""

    status = 406
    error_type = "InvalidRequest"
    title = "Not acceptable"


class PayloadTooLargeError(AgileCityError):
    """The request body exceeds the configured limit."""

    status = 413
    error_type = "RequestEntityTooLarge"
    title = "Request body too large"


class TooManyResultsError(AgileCityError):
    """The requested page size exceeds the configured maximum."""

    status = 403
    error_type = "TooManyResults"
    title = "Too many results"


class ResourceNotFoundError(AgileCityError):
    """The entity, attribute, context or type does not exist."""

    status = 404
    error_type = "ResourceNotFound"
    title = "Resource not found"


class NonexistentTenantError(AgileCityError):
    """The tenant named in NGSILD-Tenant does not exist."""

    status = 404
    error_type = "NonexistentTenant"
    title = "Nonexistent tenant"


class AlreadyExistsError(AgileCityError):
    """An entity (or context) with that identifier already exists."""

    status = 409
    error_type = "AlreadyExists"
    title = "Already exists"


class OperationNotSupportedError(AgileCityError):
    """The operation is understood but not supported in this case."""

    status = 422
    error_type = "OperationNotSupported"
    title = "Operation not supported"


class LdContextNotAvailableError(AgileCityError):
    """A remote JSON-LD @context could not be obtained or is not valid."""

    status = 503
    error_type = "LdContextNotAvailable"
    title = "JSON-LD context not available"


class InternalError(AgileCityError):
    """An unexpected failure; its detail never leaks internals."""

    status = 500
    error_type = "InternalError"
    title = "Internal error"
