"""The Amazon connector (Selling Partner API); `standin` is a local Amazon for tests and the demo."""

from brandloop_plugins.amazon.connector import AmazonConfig, AmazonConnector

__all__ = ["AmazonConfig", "AmazonConnector"]
