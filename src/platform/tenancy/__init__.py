"""Tenants: the brands using Brandloop, and the transaction context that isolates them."""
