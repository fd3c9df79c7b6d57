"""Structured logs with the request id and tenant, and Prometheus metrics."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator

import structlog
from graphql import FieldNode, OperationDefinitionNode
from prometheus_client import Counter, Histogram
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

GRAPHQL_REQUESTS = Counter(
    "brandloop_graphql_operations_total",
    "GraphQL operations by type, first root field and outcome.",
    ["operation", "outcome"],
)
GRAPHQL_SECONDS = Histogram(
    "brandloop_graphql_operation_seconds",
    "Time to parse, validate and execute a GraphQL operation.",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "brandloop_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
HTTP_SECONDS = Histogram("brandloop_http_request_seconds", "HTTP request latency by route.", ["route"])
WEBHOOK_DELIVERIES = Counter(
    "brandloop_webhook_deliveries_total",
    "Webhook deliveries by connector and outcome (accepted, or why refused).",
    ["connector", "outcome"],
)


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Every log line (ours, uvicorn's, SQLAlchemy's) as one structured event."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware logs each request with its id and tenant; uvicorn's own line would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    # The embedded server narrates every pg_ctl call at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # httpx logs every request's URL at INFO, and some platforms put tokens in the query string.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class OperationMetrics(SchemaExtension):
    """Counts and times each operation, labelled by a name the schema bounds (not the client)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        result = context.result
        failed = result is None or bool(result.errors)
        # A refused document may name fields that do not exist: keep them out of the labels.
        label = "rejected" if result is None or result.data is None else operation_label(context)
        observe_operation(label, time.perf_counter() - started, failed)


def observe_operation(label: str, seconds: float, failed: bool) -> None:
    GRAPHQL_SECONDS.labels(label).observe(seconds)
    GRAPHQL_REQUESTS.labels(label, "error" if failed else "ok").inc()


def operation_label(context: ExecutionContext) -> str:
    """Type and first root field, e.g. `query customers`: bounded by the schema, not by clients."""
    document, operation_name = context.graphql_document, context.operation_name
    for definition in document.definitions if document else ():
        if isinstance(definition, OperationDefinitionNode) and (
            operation_name is None or (definition.name and definition.name.value == operation_name)
        ):
            first = next((s for s in definition.selection_set.selections if isinstance(s, FieldNode)), None)
            return f"{definition.operation.value} {first.name.value if first else '?'}"
    return "invalid"
