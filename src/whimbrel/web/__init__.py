"""The web console: static files over the REST API and its event stream (same token
as the CLI, same rules: the console implements none of its own)."""

from pathlib import Path

HERE = Path(__file__).parent
CONSOLE = HERE / "console.html"
# The files the page loads, by name: nothing else in this directory is served.
ASSETS = {p.name: p for p in HERE.iterdir() if p.suffix in (".js", ".css")}
MEDIA = {".js": "text/javascript", ".css": "text/css"}
