"""The pipeline: the Celery app and worker behaviour, the cycle's tasks, triggering, cancelling, the schedule."""
