"""Jobs: ordered steps with do/undo, persisted step by step, run by one runner."""
