"""Brandloop: one GraphQL API for a brand's customers across every sales channel."""

__version__ = "0.1.0"
