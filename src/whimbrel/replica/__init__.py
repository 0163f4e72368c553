"""Managers sharing one store: membership, the leader's lease, the SQLite guard."""
