"""The demo tenant a new user gets from `make serve`: a brand with a dozen customers who buy on
several channels, with their orders, tags and segments."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from brandloop.auth import service as auth
from brandloop.auth.permissions import Role
from brandloop.customers import segments
from brandloop.customers import service as customers
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.orders import service as orders
from brandloop.orders.service import BuyerInput, LineInput, OrderInput
from brandloop.tenancy import service as tenancy

DEMO_SLUG = "demo"
KEY_FILE = "demo-api-key"
ACTOR = "system:demo"

# name, email, phone, [(channel, days ago, SKU, quantity)], tags
SAMPLE = [
    (
        "Li Wei",
        "li.wei@example.cn",
        "+8613812345601",
        [("shopee", 3, "TEA-OOLONG", 2), ("wechat", 40, "TEA-PUER", 1), ("shopee", 75, "CUP-CELADON", 4)],
        ["vip"],
    ),
    ("Wang Fang", "wang.fang@example.cn", "+8613812345602", [("tiktok", 12, "TEA-JASMINE", 1)], []),
    ("Zhang Min", "zhang.min@example.cn", "+8613812345603", [("wechat", 130, "TEA-PUER", 2)], []),
    (
        "Chen Jie",
        "chen.jie@example.cn",
        "+8613812345604",
        [("wechat", 8, "GIFT-BOX", 1), ("wechat", 30, "TEA-OOLONG", 3), ("tiktok", 200, "TEA-PUER", 1)],
        ["vip"],
    ),
    ("Liu Yang", "liu.yang@example.cn", None, [("amazon", 240, "CUP-CELADON", 1)], []),
    (
        "Emma Brown",
        "emma.brown@example.com",
        "+447911123456",
        [("amazon", 20, "TEA-OOLONG", 1), ("amazon", 95, "GIFT-BOX", 1)],
        ["vip"],
    ),
    ("Lucas Martin", "lucas.martin@example.fr", "+33612345601", [("amazon", 25, "TEA-JASMINE", 2)], []),
    (
        "Nguyen Thi Lan",
        "lan.nguyen@example.vn",
        "+84912345601",
        [("shopee", 50, "TEA-OOLONG", 1), ("shopee", 110, "TEA-OOLONG", 1)],
        [],
    ),
    ("Siti Rahma", "siti.rahma@example.id", "+6281234567801", [("shopee", 150, "CUP-CELADON", 2)], []),
    ("Somchai Dee", "somchai@example.th", "+66812345601", [], []),
    (
        "Maria Santos",
        "maria.santos@example.ph",
        "+639171234501",
        [("tiktok", 5, "GIFT-BOX", 2), ("tiktok", 60, "TEA-JASMINE", 1)],
        ["vip"],
    ),
    ("Tan Wei Ming", "weiming.tan@example.sg", "+6591234501", [("shopee", 2, "TEA-PUER", 1)], []),
]
PRODUCTS = {
    "TEA-OOLONG": ("Tieguanyin oolong 100g", "tea", 12800),
    "TEA-PUER": ("Aged pu'er cake 357g", "tea", 36800),
    "TEA-JASMINE": ("Jasmine pearls 50g", "tea", 8800),
    "CUP-CELADON": ("Celadon tea cup", "teaware", 6800),
    "GIFT-BOX": ("Festival gift box", "gifts", 59800),
}


async def create_demo(engine: AsyncEngine) -> str:
    """Create the demo tenant and its data unless they exist; returns a new owner API key."""
    async with platform_transaction(engine) as session:
        tenant = await tenancy.find_tenant(session, DEMO_SLUG)
        if tenant is None:
            tenant = await tenancy.create_tenant(session, slug=DEMO_SLUG, name="Demo Tea House")
    async with tenant_transaction(engine, tenant.id) as session:
        if await customers.count_customers(session, customers.CustomerFilter()) == 0:
            await _seed(session)
        issued = await auth.create_api_key(session, name="make serve (demo)", role=Role.OWNER, actor=ACTOR)
    return issued.secret


async def _seed(session: AsyncSession) -> None:
    now = datetime.now(UTC)
    batch = []
    for name, email, phone, bought, _ in SAMPLE:
        for n, (channel, days, sku, quantity) in enumerate(bought):
            product, category, price = PRODUCTS[sku]
            placed = now - timedelta(days=days)
            batch.append(
                orders.validate(
                    OrderInput(
                        channel=channel,
                        external_id=f"DEMO-{email.split('@')[0]}-{n}",
                        status="completed" if days > 10 else "paid",
                        currency="CNY",
                        total=price * quantity,
                        placed_at=placed,
                        lines=[LineInput(sku, product, quantity, price, category)],
                        buyer=BuyerInput(name=name, email=email, phone=phone),
                    )
                )
            )
    await orders.ingest(session, batch)
    for name, email, phone, bought, _ in SAMPLE:
        if not bought:
            await customers.create_customer(session, display_name=name, email=email, phone=phone)
    await segments.recompute(session)
    for _, email, _, _, tags in SAMPLE:
        if tags:
            flt = customers.CustomerFilter(search=email)
            await customers.tag_by_filter(session, flt, tags)


def saved_key(data_dir: Path) -> str | None:
    """The demo key kept from the first run: keys are stored hashed, so it cannot be re-read."""
    path = data_dir / KEY_FILE
    return path.read_text().strip() if path.exists() else None


def save_key(data_dir: Path, key: str) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key
