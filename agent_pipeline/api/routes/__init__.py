"""API routers beyond the spec's core (history, reports, metrics), each included from `api.py` by one line."""
