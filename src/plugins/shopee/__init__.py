"""The Shopee connector (Open Platform v2); `standin` is a local Shopee for tests and the demo."""

from brandloop_plugins.shopee.connector import ShopeeConfig, ShopeeConnector

__all__ = ["ShopeeConfig", "ShopeeConnector"]
