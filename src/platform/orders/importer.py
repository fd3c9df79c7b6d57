"""Bulk import of orders from CSV (a row per order line) or JSON Lines (an order per line).

Same rules as the API: every order is validated, then ingested in batches, one transaction per
batch. A rejected order never stops the others, and a re-run after a crash stores nothing twice
(orders already stored at that version come back unchanged).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import multiprocessing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from queue import Empty
from typing import IO, Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.engine import refresh_statistics
from brandloop.db.session import tenant_transaction
from brandloop.errors import InvalidInput
from brandloop.orders import service
from brandloop.orders.service import BuyerInput, LineInput, OrderInput, Outcome, ValidOrder

CSV_COLUMNS = [
    "channel",
    "external_id",
    "status",
    "currency",
    "total",
    "placed_at",
    "updated_at",
    "subtotal",
    "discount",
    "shipping",
    "tax",
    "refunded",
    "buyer_name",
    "buyer_email",
    "buyer_phone",
    "buyer_id",
    "wechat_unionid",
    "wechat_openid",
    "sku",
    "product_name",
    "category",
    "quantity",
    "unit_price",
]
REQUIRED_CSV = {
    "channel",
    "external_id",
    "status",
    "currency",
    "total",
    "placed_at",
    "sku",
    "product_name",
    "quantity",
    "unit_price",
}


class Parsed(NamedTuple):
    """One order read from the file, or why it could not be read."""

    line: int
    """The file line it starts on (1 is the first line; a CSV header is line 1)."""
    lines_in_order: int
    order: OrderInput | None
    error: str | None = None


@dataclass(slots=True)
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    order_lines: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    """(file line, reason) of each order not imported."""


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number of minor units")
    if isinstance(value, int):
        return value
    try:
        return int(value)  # a str from CSV; int() refuses "1.5" and "1e3"
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number of minor units, not {str(value)[:40]!r}") from None


def _time(value: Any, name: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError as error:
        raise ValueError(f"{name} is not an ISO 8601 time: {str(value)[:40]!r}") from error


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _order(head: dict[str, Any], lines: list[LineInput], buyer: dict[str, Any]) -> OrderInput:
    optional = lambda name: _int(head[name], name) if _text(head.get(name)) is not None else None  # noqa: E731
    updated = _text(head.get("updated_at"))
    return OrderInput(
        channel=str(head["channel"]),
        external_id=str(head["external_id"]),
        status=str(head["status"]),
        currency=str(head["currency"]),
        total=_int(head["total"], "total"),
        placed_at=_time(head["placed_at"], "placed_at"),
        updated_at=_time(updated, "updated_at") if updated else None,
        lines=lines,
        subtotal=optional("subtotal"),
        discount=optional("discount") or 0,
        shipping=optional("shipping") or 0,
        tax=optional("tax") or 0,
        refunded=optional("refunded") or 0,
        buyer=BuyerInput(**{k: _text(v) for k, v in buyer.items()})
        if any(_text(v) for v in buyer.values())
        else None,
    )


def _line(raw: dict[str, Any]) -> LineInput:
    return LineInput(
        sku=str(raw.get("sku") or ""),
        product_name=str(raw.get("product_name") or ""),
        quantity=_int(raw.get("quantity"), "quantity"),
        unit_price=_int(raw.get("unit_price"), "unit_price"),
        category=_text(raw.get("category")),
    )


def read_csv(text: IO[str]) -> Iterator[Parsed]:
    """Rows of one order are consecutive and share channel and external_id; order-level columns
    are read from the order's first row."""
    reader = csv.DictReader(text)
    missing = REQUIRED_CSV - set(reader.fieldnames or ())
    if missing:
        raise ValueError(
            f"the CSV header lacks {', '.join(sorted(missing))}; expected columns: {', '.join(CSV_COLUMNS)}"
        )
    group: list[tuple[int, dict[str, str]]] = []

    def flush() -> Parsed:
        start, head = group[0]
        try:
            lines = [_line(row) for _, row in group]
            buyer = {
                "name": head.get("buyer_name"),
                "email": head.get("buyer_email"),
                "phone": head.get("buyer_phone"),
                "buyer_id": head.get("buyer_id"),
                "wechat_unionid": head.get("wechat_unionid"),
                "wechat_openid": head.get("wechat_openid"),
            }
            return Parsed(start, len(group), _order(head, lines, buyer))
        except (ValueError, KeyError, TypeError) as error:
            return Parsed(start, len(group), None, str(error))

    for row in reader:
        key = (row.get("channel"), row.get("external_id"))
        if group and (group[0][1].get("channel"), group[0][1].get("external_id")) != key:
            yield flush()
            group = []
        group.append((reader.line_num, row))
    if group:
        yield flush()


def read_jsonl(text: IO[str]) -> Iterator[Parsed]:
    """One order per line: the CSV's order columns as keys, `lines` a list, `buyer` an object."""
    for number, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
            if not isinstance(item, dict):
                raise ValueError("each line must be a JSON object")
            lines = item.get("lines") or []
            if not isinstance(lines, list):
                raise ValueError("lines must be a list")
            buyer = item.get("buyer") or {}
            if not isinstance(buyer, dict):
                raise ValueError("buyer must be an object")
            unknown = set(buyer) - {"name", "email", "phone", "buyer_id", "wechat_unionid", "wechat_openid"}
            if unknown:
                raise ValueError(f"unknown buyer fields: {', '.join(sorted(unknown))}")
            yield Parsed(number, len(lines), _order(item, [_line(x) for x in lines], buyer))
        except (ValueError, KeyError, TypeError) as error:
            yield Parsed(number, 0, None, str(error))


Batch = list[tuple[int, ValidOrder]]
"""Valid orders with the number of order lines each has."""
Rejected = list[tuple[int, str]]
ANALYZED_TABLES = ("customers", "customer_identities", "orders", "order_lines")


def _batches(path: Path, batch_size: int) -> Iterator[tuple[Batch, Rejected, int]]:
    """Read and validate the file: batches of valid orders, the orders rejected meanwhile, and
    the bytes read so far."""
    with path.open("rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        reader = read_jsonl(text) if path.suffix.lower() in {".jsonl", ".ndjson"} else read_csv(text)
        batch: Batch = []
        rejected: Rejected = []
        for parsed in reader:
            if parsed.order is None:
                rejected.append((parsed.line, parsed.error or "unreadable"))
                continue
            try:
                batch.append((parsed.lines_in_order, service.validate(parsed.order)))
            except InvalidInput as error:
                reason = "; ".join(
                    f"{p.field}: {p.message}" if p.field else p.message for p in error.problems
                )
                rejected.append((parsed.line, reason))
                continue
            if len(batch) >= batch_size:
                yield batch, rejected, binary.tell()
                batch, rejected = [], []
        yield batch, rejected, binary.tell()


def _read_in_child(path: str, batch_size: int, out: multiprocessing.Queue[Any]) -> None:
    """The reader process: parses and validates, hands batches to the writer, None at the end."""
    try:
        for item in _batches(Path(path), batch_size):
            out.put(item)
        out.put(None)
    except Exception as error:
        out.put(error)


def _next(queue: multiprocessing.Queue[Any], reader: BaseProcess) -> Any:
    while True:
        try:
            return queue.get(timeout=1)
        except Empty:
            if not reader.is_alive():
                raise RuntimeError("the file reader stopped unexpectedly; re-run the import") from None


async def import_orders(
    engine: AsyncEngine,
    tenant_id: uuid.UUID,
    path: Path,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    """Import a file; `progress` is called with the bytes read so far after each batch.

    A child process reads and validates (Python, one core) while this one writes the previous
    batch (PostgreSQL, the other core): a thread would not do, the GIL would serialise them."""
    summary = ImportSummary()
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[Any] = context.Queue(maxsize=4)
    reader = context.Process(target=_read_in_child, args=(str(path), batch_size, queue), daemon=True)
    reader.start()
    written = 0
    try:
        while (item := await asyncio.to_thread(_next, queue, reader)) is not None:
            if isinstance(item, Exception):
                raise item
            batch, rejected, done = item
            summary.rejected.extend(rejected)
            if batch:
                await _ingest(engine, tenant_id, batch, summary)
                written += 1
                if written == 1:
                    await refresh_statistics(engine, ANALYZED_TABLES)
            progress(done)
    finally:
        if reader.is_alive():
            reader.terminate()
        reader.join()
    if written > 1:
        await refresh_statistics(engine, ANALYZED_TABLES)
    summary.rejected.sort()
    return summary


async def _ingest(engine: AsyncEngine, tenant_id: uuid.UUID, batch: Batch, summary: ImportSummary) -> None:
    async with tenant_transaction(engine, tenant_id) as session:
        result = await service.ingest(session, [valid for _, valid in batch])
    for (lines_in_order, _), (outcome, _) in zip(batch, result.outcomes, strict=True):
        if outcome is Outcome.CREATED:
            summary.created += 1
        elif outcome is Outcome.UPDATED:
            summary.updated += 1
        else:
            summary.unchanged += 1
        if outcome is not Outcome.UNCHANGED:
            summary.order_lines += lines_in_order
