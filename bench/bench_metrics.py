"""A `/metrics` scrape on 1,000,000 operation rows (200,000 cycles and their phases) on real Postgres.

Compares, in one run on the same data, the scrape (grouped counts on indexed columns, today's rows only)
with the baseline a naive collector would run: a GROUP BY over every cycle's JSON outcome and every phase's
duration. Prints both timings and their ratio.

Run: python bench/bench_metrics.py [--rows 1000000]
"""

from __future__ import annotations

import argparse

from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py
from scratch import best_of, connect, scratch_database  # bench/scratch.py
from sqlalchemy import text

from agent_pipeline.config import Settings
from agent_pipeline.insight.metrics import render
from agent_pipeline.store.operations import OperationsStore

# One cycle row and four phase rows per cycle, a year of history; the newest day has a few active rows.
FILL = """
INSERT INTO operations (operation_id, operation_type, status, parent_operation_id, created_at, started_at,
                        completed_at, progress, metadata, error_message)
SELECT 'op_bench_' || g,
       (ARRAY['agent_research', 'agent_design', 'training', 'backtesting', 'agent_assessment'])[1 + g %% 5],
       CASE WHEN g < 20 THEN (ARRAY['running', 'pending'])[1 + g %% 2]
            WHEN g %% 7 = 0 THEN 'failed' ELSE 'completed' END,
       CASE WHEN g %% 5 = 0 THEN NULL ELSE 'op_bench_' || (g - g %% 5) END,
       now() - (g || ' seconds')::interval * 30, now() - (g || ' seconds')::interval * 30,
       CASE WHEN g < 20 THEN NULL ELSE now() - (g || ' seconds')::interval * 30 + interval '90 seconds' END,
       '{}'::jsonb,
       jsonb_build_object('cost_usd', 0.01, 'design_usage', jsonb_build_object('input_tokens', 1000),
                          'backtest_result', jsonb_build_object('sharpe_ratio', random())),
       CASE WHEN g %% 7 = 0 THEN 'Training gate failed: no_skill' END
FROM generate_series(1, %(rows)s) AS g
"""
FILL_RESULTS = """
INSERT INTO cycle_results (operation_id, created_at, completed_at, status, outcome)
SELECT operation_id, created_at, completed_at, status,
       CASE WHEN status = 'completed' THEN 'passed' ELSE 'training_gate' END
FROM operations WHERE operation_type = 'agent_research' AND status IN ('completed', 'failed')
"""
# What a collector without cycle_results and without a time window would run on each scrape.
BASELINE = [
    """SELECT CASE WHEN status = 'completed' THEN 'passed' WHEN error_message LIKE 'Training gate%%' THEN 'tg'
              ELSE 'other' END, count(*) FROM operations WHERE operation_type = 'agent_research' GROUP BY 1""",
    """SELECT operation_type, avg(extract(epoch FROM completed_at - started_at)) FROM operations
       WHERE status = 'completed' GROUP BY 1""",
    """SELECT sum((metadata->'design_usage'->>'input_tokens')::int) FROM operations
       WHERE operation_type = 'agent_research'""",
    "SELECT max(completed_at) FROM operations WHERE operation_type = 'agent_research' AND status = 'completed'",
]


def baseline(store: OperationsStore) -> None:
    with store.engine.connect() as connection:
        for query in BASELINE:
            connection.execute(text(query.replace("%%", "%"))).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    add_options(parser, RESULTS_DIR / "metrics.json")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    with scratch_database() as (name, store):
        with connect(name) as conn:
            conn.execute(FILL, {"rows": args.rows})
            conn.execute(FILL_RESULTS)
            conn.execute("VACUUM ANALYZE operations")
            conn.execute("VACUUM ANALYZE cycle_results")
        settings = Settings()
        scrape = best_of(10, lambda: render(store, settings))
        naive = best_of(3, lambda: baseline(store))
        store.engine.dispose()
        print(
            f"metrics ({args.rows:,} operation rows): scrape {scrape * 1000:.1f} ms, "
            f"full-scan baseline {naive * 1000:.0f} ms, ratio {scrape / naive:.3f}"
        )
    record = {"rows": args.rows, "scrape_ms": scrape * 1000, "full_scan_ms": naive * 1000, "ratio": scrape / naive}
    write(args.results, record, cycles=None, cycles_note="no research cycle: synthetic operation rows")


if __name__ == "__main__":
    main()
