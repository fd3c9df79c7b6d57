"""The TikTok Shop connector (Partner API 202309); `standin` is a local TikTok Shop for tests and
the demo."""

from brandloop_plugins.tiktok_shop.connector import TikTokShopConfig, TikTokShopConnector

__all__ = ["TikTokShopConfig", "TikTokShopConnector"]
