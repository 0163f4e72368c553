"""The web console: one static page over the REST API (same token as the CLI)."""

from pathlib import Path

CONSOLE = Path(__file__).parent / "console.html"
