"""What every command needs: settings, consoles, the API client."""

from __future__ import annotations

from functools import cache

from rich.console import Console

from whimbrel.cli.client import Client
from whimbrel.config import Settings, load

out = Console()
err = Console(stderr=True)


@cache
def settings() -> Settings:
    return load()


_client: Client | None = None


def client() -> Client:
    """The API client, made on first use (tests put their own in ``use_client``)."""
    global _client
    if _client is None:
        _client = Client(settings())
    return _client


def use_client(c: Client | None) -> None:
    global _client
    _client = c
