"""The leaderboard (`ktrdr agent history`) at 100,000 finished cycles on real Postgres.

Compares, in one run on the same data: one page of the typed, indexed `cycle_results` table against the
baseline that a JSON-only design would need (sort every cycle row by a figure inside its metadata). Prints
both timings and their ratio, for the unfiltered `--sort dsr` page and a `--symbol --timeframe --sort sharpe`
page.

Run: python bench/bench_history.py [--cycles 100000]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from results_meta import RESULTS_DIR, add_options, reset_gate_env, write  # bench/results_meta.py
from scratch import best_of, connect, scratch_database  # bench/scratch.py
from sqlalchemy import text

from agent_pipeline.store.history import SortKey, leaderboard
from agent_pipeline.store.operations import OperationsStore

SERIES = ["EURUSD", "SP500", "NASDAQ"]

# Finished cycles with realistic metadata (one in five without backtest figures: stopped by the training gate).
FILL_OPERATIONS = """
INSERT INTO operations (operation_id, operation_type, status, created_at, completed_at, progress, metadata,
                        result_summary, error_message)
SELECT 'op_agent_research_bench_' || g, 'agent_research',
       CASE WHEN g %% 5 = 0 THEN 'failed' ELSE 'completed' END,
       now() - (g || ' seconds')::interval * 60, now() - (g || ' seconds')::interval * 60 + interval '5 minutes',
       '{}'::jsonb,
       jsonb_build_object(
         'strategy_name', 'strategy_' || g, 'symbol', (%(series)s::text[])[1 + g %% 3],
         'timeframe', CASE WHEN g %% 3 = 0 THEN '1h' ELSE '1d' END, 'designer', 'offline',
         'training_result', jsonb_build_object('balanced_accuracy', 0.3 + random() * 0.2),
         'backtest_result', CASE WHEN g %% 5 = 0 THEN NULL ELSE jsonb_build_object(
             'sharpe_ratio', random() * 4 - 2, 'num_trades', (random() * 80)::int,
             'deflated_sharpe', random(), 'total_return', random() * 0.4 - 0.2,
             'excess_return', random() * 0.2 - 0.1) END,
         'cost_usd', random() * 0.05),
       jsonb_build_object('lockbox', jsonb_build_object('total_return', random() * 0.2 - 0.1)),
       CASE WHEN g %% 5 = 0 THEN 'Training gate failed: no_skill (balanced accuracy 35%% < 40%%)' END
FROM generate_series(1, %(cycles)s) AS g
"""
# The same cycles' leaderboard rows, as the finishing transition writes them.
FILL_RESULTS = """
INSERT INTO cycle_results (operation_id, created_at, completed_at, status, outcome, reason, strategy_name, symbol,
                           timeframe, designer, balanced_accuracy, sharpe_ratio, num_trades, deflated_sharpe,
                           total_return, excess_return, cost_usd, discovery, lockbox_return)
SELECT operation_id, created_at, completed_at, status,
       CASE WHEN status = 'failed' THEN 'training_gate' ELSE 'passed' END, error_message,
       metadata->>'strategy_name', metadata->>'symbol', metadata->>'timeframe', metadata->>'designer',
       (metadata->'training_result'->>'balanced_accuracy')::float,
       (metadata->'backtest_result'->>'sharpe_ratio')::float, (metadata->'backtest_result'->>'num_trades')::int,
       (metadata->'backtest_result'->>'deflated_sharpe')::float,
       (metadata->'backtest_result'->>'total_return')::float,
       (metadata->'backtest_result'->>'excess_return')::float, (metadata->>'cost_usd')::float,
       (metadata->'backtest_result'->>'deflated_sharpe')::float >= 0.95,
       (result_summary->'lockbox'->>'total_return')::float
FROM operations
"""
# The baseline: the same page read from the operations table's JSON (what the leaderboard would cost without
# cycle_results): every finished cycle row is read and its figure extracted before the sort.
BASELINE = """
SELECT operation_id, metadata, result_summary FROM operations
WHERE operation_type = 'agent_research' AND status IN ('completed', 'failed', 'cancelled') {where}
ORDER BY (metadata->'backtest_result'->>'{figure}')::float DESC NULLS LAST, operation_id DESC
LIMIT 20
"""


def baseline(store: OperationsStore, figure: str, where: str = "") -> Callable[[], object]:
    def run() -> object:
        with store.engine.connect() as connection:
            return connection.execute(text(BASELINE.format(figure=figure, where=where))).all()

    return run


def measure(store: OperationsStore, cycles: int) -> dict[str, float]:
    dsr_page = best_of(20, lambda: leaderboard(store, sort=SortKey.DSR))
    dsr_scan = best_of(5, baseline(store, "deflated_sharpe"))
    print(
        f"history ({cycles:,} cycles), --sort dsr: page {dsr_page * 1000:.2f} ms, "
        f"JSON-scan baseline {dsr_scan * 1000:.1f} ms, ratio {dsr_page / dsr_scan:.4f}"
    )
    series = dict(symbol="SP500", timeframe="1d", sort=SortKey.SHARPE)
    page = best_of(20, lambda: leaderboard(store, **series))  # type: ignore[arg-type]
    where = "AND metadata->>'symbol' = 'SP500' AND metadata->>'timeframe' = '1d'"
    scan = best_of(5, baseline(store, "sharpe_ratio", where))
    print(
        f"history ({cycles:,} cycles), --symbol SP500 --timeframe 1d --sort sharpe: page {page * 1000:.2f} ms, "
        f"JSON-scan baseline {scan * 1000:.1f} ms, ratio {page / scan:.4f}"
    )
    deep = best_of(10, lambda: leaderboard(store, sort=SortKey.RETURN, offset=5_000))
    print(f"history ({cycles:,} cycles), --sort return, offset 5,000: page {deep * 1000:.2f} ms")
    return {
        "dsr_page_ms": dsr_page * 1000,
        "dsr_scan_ms": dsr_scan * 1000,
        "dsr_ratio": dsr_page / dsr_scan,
        "series_sharpe_page_ms": page * 1000,
        "series_sharpe_scan_ms": scan * 1000,
        "series_sharpe_ratio": page / scan,
        "return_offset_5000_page_ms": deep * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100_000)
    add_options(parser, RESULTS_DIR / "history.json")
    args = parser.parse_args()
    reset_gate_env(keep=args.keep_gate_env)
    with scratch_database() as (name, store):
        with connect(name) as conn:
            conn.execute(FILL_OPERATIONS, {"series": SERIES, "cycles": args.cycles})
            conn.execute(FILL_RESULTS)
            conn.execute("ANALYZE operations")
            conn.execute("ANALYZE cycle_results")
        record = {"cycle_rows": args.cycles, **measure(store, args.cycles)}
        store.engine.dispose()
    write(args.results, record, cycles=None, cycles_note="no research cycle: synthetic leaderboard rows")


if __name__ == "__main__":
    main()
