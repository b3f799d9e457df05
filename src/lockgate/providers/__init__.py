"""Upstream providers behind one interface (like httpx transports): a new provider is one module."""

from lockgate.providers.base import Provider, make_provider

__all__ = ["Provider", "make_provider"]
