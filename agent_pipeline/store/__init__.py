"""The store: the operations table, the cycle results (leaderboard) and their migrations. No Celery here."""
