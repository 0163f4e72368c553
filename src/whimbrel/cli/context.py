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


@cache
def client() -> Client:
    return Client(settings())
