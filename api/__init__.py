"""FastAPI facade: starts workflows, reads their state, signals retries, streams events."""
