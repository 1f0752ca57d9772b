"""The Python client of Quarry's HTTP API.

from quarry_client import Quarry

q = Quarry()  # QUARRY_URL and QUARRY_API_KEY, or what `make run` wrote
q.upload_and_wait("notes", ["report.pdf"])
for hit in q.search_and_wait("notes", "what did we decide?").hits:
    print(hit.score, hit.text)
"""

from quarry_client import webhooks
from quarry_client.calls import RetryPolicy
from quarry_client.clients import AsyncQuarry, Quarry, __version__
from quarry_client.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    JobCancelled,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    QuarryError,
    RateLimited,
    RetryLater,
    ServerError,
    TransportError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
    WaitTimeout,
)
from quarry_client.models import (
    ApiKey,
    BatchSearchResult,
    Collection,
    Delivery,
    Document,
    Failure,
    Health,
    Hit,
    IngestResult,
    Job,
    Pipeline,
    Progress,
    QueryResult,
    SearchResult,
    Webhook,
)

__all__ = [
    "ApiKey",
    "AsyncQuarry",
    "BadRequest",
    "BatchSearchResult",
    "Collection",
    "Conflict",
    "Delivery",
    "Document",
    "Failure",
    "FieldError",
    "Forbidden",
    "Health",
    "Hit",
    "IngestResult",
    "Job",
    "JobCancelled",
    "JobFailed",
    "NotFound",
    "PayloadTooLarge",
    "Pipeline",
    "Progress",
    "Quarry",
    "QuarryError",
    "QueryResult",
    "RateLimited",
    "RetryLater",
    "RetryPolicy",
    "SearchResult",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationError",
    "WaitTimeout",
    "Webhook",
    "__version__",
    "webhooks",
]
