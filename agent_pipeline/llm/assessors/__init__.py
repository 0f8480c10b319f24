"""Assessor implementations: `anthropic` (Claude, real SDK) and `offline` (documented rules, no key)."""
