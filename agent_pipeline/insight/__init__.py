"""Read-only views of finished research: evidence per series, reports and plots, Prometheus figures, tracking."""
