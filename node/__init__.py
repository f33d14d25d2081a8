"""coopnet's node: everything that touches the outside world (SQLite, HTTP, files, clock)."""

__version__ = "0.1.0"
