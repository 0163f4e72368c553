"""The ``whimbrel`` command: a client of the manager's REST API (and the lab)."""
