"""The research dashboard served by the API under `/ui` (issue 18): Jinja2 pages, one small script, no build."""
