"""Thin Celery tasks, one module a phase; the work itself lives in engine/, llm/ and gates.py."""
