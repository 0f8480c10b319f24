"""Operations list page vs an exact COUNT(*) on a large table (real Postgres).

Why lists never pay for a total: at this size the indexed page costs a fraction of a millisecond while an
exact count of one type scans the index. Prints the page time, the count time and their ratio, both measured
in this run on the same table.

Run: python bench/bench_operations.py [--rows 300000]
"""

from __future__ import annotations

import argparse

from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py
from scratch import best_of, connect, scratch_database  # bench/scratch.py

from agent_pipeline.store.operations import OperationType

TYPES = [t.value for t in OperationType]


def fill(url_db: str, rows: int) -> None:
    """Insert `rows` operations spread over the five types and a year of creation times, in SQL."""
    with connect(url_db) as conn:
        conn.execute(
            """
            INSERT INTO operations (operation_id, operation_type, status, created_at, progress, metadata)
            SELECT 'op_bench_' || g, (%s::text[])[1 + g %% 5], 'completed',
                   now() - (g || ' seconds')::interval * 100, '{}'::jsonb, '{}'::jsonb
            FROM generate_series(1, %s) AS g
            """,
            (TYPES, rows),
        )
        conn.execute("ANALYZE operations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    add_options(parser, RESULTS_DIR / "operations.json")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    with scratch_database() as (name, store):
        fill(name, args.rows)
        page = best_of(20, lambda: store.list(operation_type=OperationType.TRAINING, limit=20))
        count = best_of(5, lambda: store.count(operation_type=OperationType.TRAINING))
        store.engine.dispose()
        print(
            f"operations ({args.rows:,} rows): list page {page * 1000:.2f} ms, exact count {count * 1000:.1f} ms, "
            f"ratio {page / count:.3f} (list pays no count)"
        )
    record = {"rows": args.rows, "list_page_ms": page * 1000, "exact_count_ms": count * 1000, "ratio": page / count}
    write(args.results, record, cycles=None, cycles_note="no research cycle: synthetic operation rows")


if __name__ == "__main__":
    main()
