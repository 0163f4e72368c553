"""Read-only checks that return every finding, not the first (DESIGN principle 6)."""
