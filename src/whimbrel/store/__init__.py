"""Persistent state: SQLAlchemy models, the session factory and repositories."""
