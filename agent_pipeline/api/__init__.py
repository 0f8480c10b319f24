"""The HTTP API: the FastAPI app (`app.py`) and its routes."""
