"""`ktrdr paper`: paper trading a discovery's final model on forward bars, with a decay alarm (issue 27).

Paper only: no command here reaches a live broker. `ktrdr beat` steps every open account every KTRDR_PAPER_INTERVAL
seconds; `ktrdr paper step` runs the same step in this process (the embedded default has no beat).
"""

from __future__ import annotations

from typing import Any

import click

from agent_pipeline.cli.app import cli, console, echo_json, open_store


@cli.group("paper")
def paper() -> None:
    """Paper accounts: a discovery's final model traded on paper over forward bars, watched by a decay alarm."""


@paper.command("start")
@click.argument("cycle_id")
@click.option("--capital", type=click.FloatRange(min=0, min_open=True), default=10_000.0, show_default=True)
@click.option("--force", is_flag=True, help="Open an account for a cycle that is not a discovery.")
@click.option("--stop-on-decay", is_flag=True, help="Stop trading when the decay alarm fires (default: flag it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def start(cycle_id: str, capital: float, force: bool, stop_on_decay: bool, as_json: bool) -> None:
    """Open a paper account for a completed cycle's final model, from the series' next bar on."""
    from agent_pipeline.pipeline.paper import open_account  # lazy: start-up cost (pandas)

    account = open_account(open_store(), cycle_id, capital=capital, force=force, stop_on_decay=stop_on_decay)
    if as_json:
        echo_json(account.to_dict())
        return
    click.echo(
        f"Opened paper account {account.id} for {cycle_id}: {account.series}, "
        f"{account.capital:,.2f} on paper, from the first bar after {account.start_after}"
    )


@paper.command("list")
@click.option("--state", type=click.Choice(["open", "decayed", "stopped"]), help="Only accounts in this state.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def list_command(state: str | None, as_json: bool) -> None:
    """Every paper account, newest first."""
    from agent_pipeline.store.paper import list_accounts  # lazy: start-up cost (pandas)

    accounts = [a.to_dict() for a in list_accounts(open_store(), states=(state,) if state else None)]
    if as_json:
        echo_json(accounts)
    else:
        console().print(accounts_table(accounts))


@paper.command("status")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def status(account_id: str, as_json: bool) -> None:
    """One paper account: state, forward bars booked, equity against the backtest's, the decay alarm."""
    from agent_pipeline.insight.paper import account_view  # lazy: start-up cost (pandas)

    view = account_view(open_store(), account_id)
    if as_json:
        echo_json(view)
    else:
        console().print(status_table(view))


@paper.command("stop")
@click.argument("account_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def stop(account_id: str, as_json: bool) -> None:
    """Stop a paper account: it books no bar after this (stopping it again changes nothing)."""
    from agent_pipeline.store.paper import stop_account  # lazy: start-up cost (pandas)

    account = stop_account(open_store(), account_id)
    if as_json:
        echo_json(account.to_dict())
    else:
        click.echo(f"Paper account {account.id} is stopped ({account.stop_reason}) after {account.bars} bars")


@paper.command("step")
@click.argument("account_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON as the API does.")
def step(account_id: str | None, as_json: bool) -> None:
    """Book the forward bars each open account has not seen yet (or the one named), in this process."""
    from agent_pipeline.pipeline.paper import step_accounts  # lazy: start-up cost (pandas, torch)

    stepped = step_accounts(open_store(), account_id)
    if as_json:
        echo_json([vars(s) for s in stepped])
        return
    if not stepped:
        click.echo("No open paper account.")
    for s in stepped:
        alarm = ", decay alarm" if s.decayed else ""
        error = f": {s.error}" if s.error else ""
        click.echo(f"Paper account {s.account_id}: {s.booked} bars booked, {s.state}{alarm}{error}")


def accounts_table(accounts: list[dict[str, Any]]) -> Any:
    """The accounts as a table."""
    from rich.table import Table  # lazy: start-up cost

    if not accounts:
        return "No paper accounts yet (`ktrdr paper start CYCLE_ID`)."
    table = Table(title=f"Paper accounts: {len(accounts)}", title_justify="left")
    for header in ("Account", "State", "Series", "Cycle", "Bars", "Equity", "Return", "Decay alarm"):
        table.add_column(header, no_wrap=True)
    for a in accounts:
        decay = a["decay"]
        table.add_row(
            a["id"], a["state"], a["series"], a["cycle_id"], str(a["bars"]),
            f"{a['equity']:,.2f}", f"{a['return']:+.1%}", f"at {decay['bar']}" if decay["fired"] else "-",
        )  # fmt: skip
    return table


def status_table(view: dict[str, Any]) -> Any:
    """One account's status as a two-column table."""
    from rich.table import Table  # lazy: start-up cost

    expected, decay = view["expected"], view["decay"]
    table = Table(title=f"Paper account {view['id']} (paper only)", title_justify="left", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    alarm = "not fired" if not decay["fired"] else f"fired at {decay['bar']} (statistic {decay['statistic']:.2f})"
    span = f", {view['first_bar']} to {view['last_bar']}" if view["bars"] else ""
    rows = [
        ("State", view["state"] + (f" ({view['stop_reason']})" if view["stop_reason"] else "")),
        ("Cycle", view["cycle_id"]),
        ("Series", f"{view['series']}, from the first bar after {view['start_after']}"),
        ("Bars", f"{view['bars']} forward bars booked{span}"),
        ("Equity", f"{view['equity']:,.2f} of {view['capital']:,.2f} ({view['return']:+.2%})"),
        ("Backtest expects", f"{expected['equity']:,.2f} (band {expected['low']:,.2f} to {expected['high']:,.2f})"),
        ("Decay alarm", f"{alarm}; CUSUM {decay['now'] or 0:.2f} of {decay['threshold']:.2f}"),
        ("Model sha256", view["model_sha256"]),
    ]  # fmt: skip
    if view["last_error"]:
        rows.append(("Last error", view["last_error"]))
    for name, value in rows:
        table.add_row(name, value)
    return table
