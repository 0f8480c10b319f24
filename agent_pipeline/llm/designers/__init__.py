"""Designer implementations: `anthropic` (Claude, real SDK) and `offline` (seeded search, no key needed)."""
