"""The demo tenant a new user gets from `make serve`: a brand with a few dozen customers."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.auth import service as auth
from brandloop.auth.permissions import Role
from brandloop.customers import service as customers
from brandloop.customers.service import LifecycleStage
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.tenancy import service as tenancy

DEMO_SLUG = "demo"
KEY_FILE = "demo-api-key"

SAMPLE = [
    ("Li Wei", "li.wei@example.cn", "+8613812345601", LifecycleStage.ACTIVE, ["vip", "shopee"]),
    ("Wang Fang", "wang.fang@example.cn", "+8613812345602", LifecycleStage.NEW, ["tiktok"]),
    ("Zhang Min", "zhang.min@example.cn", "+8613812345603", LifecycleStage.DORMANT, ["wechat"]),
    ("Chen Jie", "chen.jie@example.cn", "+8613812345604", LifecycleStage.ACTIVE, ["vip", "wechat"]),
    ("Liu Yang", "liu.yang@example.cn", None, LifecycleStage.CHURNED, ["amazon"]),
    ("Emma Brown", "emma.brown@example.com", "+447911123456", LifecycleStage.ACTIVE, ["amazon", "vip"]),
    ("Lucas Martin", "lucas.martin@example.fr", "+33612345601", LifecycleStage.NEW, ["amazon"]),
    ("Nguyen Thi Lan", "lan.nguyen@example.vn", "+84912345601", LifecycleStage.ACTIVE, ["shopee"]),
    ("Siti Rahma", "siti.rahma@example.id", "+6281234567801", LifecycleStage.DORMANT, ["shopee", "tiktok"]),
    ("Somchai Dee", "somchai@example.th", "+66812345601", LifecycleStage.PROSPECT, []),
    ("Maria Santos", "maria.santos@example.ph", "+639171234501", LifecycleStage.ACTIVE, ["tiktok", "vip"]),
    ("Tan Wei Ming", "weiming.tan@example.sg", "+6591234501", LifecycleStage.NEW, ["shopee"]),
]


async def create_demo(engine: AsyncEngine) -> str:
    """Create the demo tenant and its customers unless they exist; returns a new owner API key."""
    async with platform_transaction(engine) as session:
        tenant = await tenancy.find_tenant(session, DEMO_SLUG)
        if tenant is None:
            tenant = await tenancy.create_tenant(session, slug=DEMO_SLUG, name="Demo Brand")
    async with tenant_transaction(engine, tenant.id) as session:
        if await customers.count_customers(session, customers.CustomerFilter()) == 0:
            for name, email, phone, stage, tags in SAMPLE:
                customer = await customers.create_customer(
                    session, display_name=name, email=email, phone=phone, lifecycle_stage=stage
                )
                if tags:
                    await customers.add_tags(session, [customer.id], tags)
        issued = await auth.create_api_key(
            session, name="make serve (demo)", role=Role.OWNER, actor="system:demo"
        )
    return issued.secret


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
