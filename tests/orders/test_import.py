"""`brandloop import orders`: CSV and JSON Lines, rejects with line numbers, safe re-runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brandloop.cli import app
from brandloop.settings import Settings, get_settings
from support import GraphQLClient, Tenant

HEADER = (
    "channel,external_id,status,currency,total,placed_at,updated_at,subtotal,discount,shipping,tax,refunded,"
    "buyer_name,buyer_email,buyer_phone,buyer_id,wechat_unionid,wechat_openid,sku,product_name,category,quantity,unit_price"
)
GOOD_CSV = f"""{HEADER}
shopee,S-1,paid,CNY,25900,2026-11-01T10:00:00+08:00,,,0,0,0,0,Li Wei,li@example.cn,+8613800138000,sp-1,,,TEA-01,Oolong,tea,2,9900
shopee,S-1,,,,,,,,,,,,,,,,,CUP-02,Cup,,1,6100
tiktok,T-1,completed,CNY,5000,2026-11-02T10:00:00+08:00,,,0,0,0,0,,li@example.cn,,tt-9,,,TEA-01,Oolong,tea,1,5000
amazon,A-1,paid,USD,1999,2026-11-03T10:00:00Z,,,0,0,0,0,Emma,,,amzn-1,,,MUG-1,"Mug, large",,1,1999
"""


@pytest.fixture
def brandloop(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("BRANDLOOP_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("BRANDLOOP_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


async def run_import(runner: CliRunner, tenant: Tenant, path: Path, code: int = 0) -> str:
    result = await asyncio.to_thread(
        runner.invoke, app, ["import", "orders", str(path), "--tenant", tenant.slug]
    )
    assert result.exit_code == code, result.output
    return result.output


async def counts(gql: GraphQLClient, tenant: Tenant) -> dict[str, int]:
    data = await gql.data(tenant.key, "{ orders { totalCount } customers { totalCount } }")
    return {"orders": data["orders"]["totalCount"], "customers": data["customers"]["totalCount"]}


async def test_csv_import_and_a_rerun_that_changes_nothing(
    brandloop: CliRunner, gql: GraphQLClient, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(GOOD_CSV)
    output = await run_import(brandloop, tenant, path)
    assert "created 3, updated 0, unchanged 0, rejected 0" in output
    assert "4 order lines" in output
    assert await counts(gql, tenant) == {"orders": 3, "customers": 2}  # Li Wei came twice

    data = await gql.data(
        tenant.key,
        '{ orders(filter: {channel: "shopee"}) { edges { node { total { amount } lines { sku quantity } '
        "customer { displayName identities { kind } } } } } }",
    )
    order = data["orders"]["edges"][0]["node"]
    assert order["total"] == {"amount": 25900}
    assert [(x["sku"], x["quantity"]) for x in order["lines"]] == [("TEA-01", 2), ("CUP-02", 1)]
    assert {i["kind"] for i in order["customer"]["identities"]} == {
        "EMAIL",
        "PHONE",
        "SHOPEE_BUYER",
        "TIKTOK_BUYER",
    }

    scored = await gql.data(
        tenant.key, "{ customers { edges { node { lifecycleStage rfm { frequency } } } } }"
    )
    assert all(e["node"]["rfm"] is not None for e in scored["customers"]["edges"]), (
        scored
    )  # segments recomputed

    again = await run_import(brandloop, tenant, path)
    assert "created 0, updated 0, unchanged 3, rejected 0" in again
    assert await counts(gql, tenant) == {"orders": 3, "customers": 2}


async def test_a_half_done_import_can_simply_be_rerun(
    brandloop: CliRunner, gql: GraphQLClient, tenant: Tenant, tmp_path: Path
) -> None:
    lines = GOOD_CSV.splitlines(keepends=True)
    partial = tmp_path / "partial.csv"
    partial.write_text("".join(lines[:3]))  # as if it died after the first order
    await run_import(brandloop, tenant, partial)
    full = tmp_path / "full.csv"
    full.write_text(GOOD_CSV)
    output = await run_import(brandloop, tenant, full)
    assert "created 2, updated 0, unchanged 1, rejected 0" in output
    assert await counts(gql, tenant) == {"orders": 3, "customers": 2}


async def test_rejected_orders_are_reported_by_line_and_do_not_stop_the_rest(
    brandloop: CliRunner, gql: GraphQLClient, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        f"""{HEADER}
shopee,OK-1,paid,CNY,100,2026-11-01T10:00:00Z,,,0,0,0,0,,,,b1,,,S,P,,1,100
shopee,BAD-1,paid,XYZ,100,2026-11-01T10:00:00Z,,,0,0,0,0,,,,b2,,,S,P,,1,100
shopee,BAD-2,paid,CNY,12.5,2026-11-01T10:00:00Z,,,0,0,0,0,,,,b3,,,S,P,,1,100
shopee,BAD-3,paid,CNY,100,yesterday,,,0,0,0,0,,,,b4,,,S,P,,1,100
shopee,BAD-4,paid,CNY,100,2026-11-01T10:00:00,,,0,0,0,0,,,,b5,,,S,P,,1,100
shopee,OK-2,paid,CNY,100,2026-11-01T10:00:00Z,,,0,0,0,0,,bad-email,,b6,,,S,P,,1,100
shopee,OK-3,paid,CNY,100,2026-11-01T10:00:00Z,,,0,0,0,0,,,,b7,,,S,P,,1,100
"""
    )
    output = await run_import(brandloop, tenant, path, code=1)
    assert "created 2, updated 0, unchanged 0, rejected 5" in output
    assert "line 3: currency: Use an ISO 4217 code" in output
    assert "line 4: total must be a whole number" in output
    assert "line 5: placed_at is not an ISO 8601 time" in output
    assert "line 6: placedAt: Give times with a UTC offset" in output
    assert "line 7: buyer.email:" in output
    assert (await counts(gql, tenant))["orders"] == 2


async def test_jsonl_import(brandloop: CliRunner, gql: GraphQLClient, tenant: Tenant, tmp_path: Path) -> None:
    orders = [
        {
            "channel": "wechat",
            "external_id": "WX-1",
            "status": "paid",
            "currency": "CNY",
            "total": 8800,
            "placed_at": "2026-11-01T10:00:00+08:00",
            "lines": [{"sku": "TEA-01", "product_name": "Oolong", "quantity": 1, "unit_price": 8800}],
            "buyer": {"name": "Chen", "wechat_unionid": "union-77", "phone": "+8613911112222"},
        },
        {"channel": "wechat", "external_id": "WX-2"},
        "not an object",
    ]
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(json.dumps(o) for o in orders) + "\n{broken json\n")
    output = await run_import(brandloop, tenant, path, code=1)
    assert "created 1, updated 0, unchanged 0, rejected 3" in output
    assert "line 2:" in output and "line 3: each line must be a JSON object" in output and "line 4:" in output
    data = await gql.data(
        tenant.key, "{ customers { edges { node { displayName identities { kind value } } } } }"
    )
    (customer,) = data["customers"]["edges"]
    assert {(i["kind"], i["value"]) for i in customer["node"]["identities"]} == {
        ("WECHAT_UNIONID", "union-77"),
        ("PHONE", "+8613911112222"),
    }


async def test_a_file_without_the_needed_columns_is_refused(
    brandloop: CliRunner, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("order,amount\n1,2\n")
    output = await run_import(brandloop, tenant, path, code=2)
    assert "the CSV header lacks" in output
