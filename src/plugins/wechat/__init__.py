"""The WeChat Official Account connector; `standin` is a local WeChat for tests and the demo."""

from brandloop_plugins.wechat.connector import WeChatConfig, WeChatConnector

__all__ = ["WeChatConfig", "WeChatConnector"]
