"""The pre-aggregated input: a click log summed per creative and context cell, by any warehouse.

`data build` reads click logs on one machine with DuckDB, which streams and spills and has been
measured at 50 million rows (`bench/bench_ingest.py`). A log that outgrows one machine is summed
where it lives (Spark SQL, BigQuery, Snowflake, Hive, DuckDB): the result keeps the log contract
(`creative4u.schema.LOG_REQUIRED`), one row per creative x context cell with impressions and
clicks summed, so `data build --logs` takes it as it is. Everything the build derives is a sum
over those cells (CTR per creative and query, the impression table M2FN trains on, the pairs and
their labels), so the dataset is the same as from the raw log; only the card's row counts read
cells instead of log rows.

The query is written once here, in standard SQL (no engine's own functions), for the columns a
log has: `creative4u data warehouse-sql` prints it.
"""

from __future__ import annotations

import argparse

from creative4u.schema import LOG_CONTEXT, LOG_REQUIRED

KEYS: tuple[str, ...] = ("creative_id", "product_id", "image")


def ctr_cells_sql(
    context: list[str] | tuple[str, ...] = LOG_CONTEXT, source: str = "click_log"
) -> str:
    """The aggregation, grouped by the required keys and the given context columns.

    Rows that break the contract (a missing key, negative counts, more clicks than impressions)
    are left out before summing: inside a sum they could not be told apart any more. The build
    quarantines such rows when it reads a raw log; a warehouse counts them with the negated
    condition (`WHERE NOT (...)`), the second statement printed by the CLI.
    """
    unknown = [c for c in context if c not in LOG_CONTEXT]
    if unknown:
        raise ValueError(f"not context columns of the log contract: {', '.join(unknown)}")
    keys = ", ".join((*KEYS, *context))  # the contract's names need no quoting in any dialect
    return (
        f"SELECT {keys},\n"
        f"       SUM(impressions) AS impressions, SUM(clicks) AS clicks\n"
        f"FROM {source}\n"
        f"WHERE {valid_row_sql()}\n"
        f"GROUP BY {keys}"
    )


def valid_row_sql() -> str:
    """The row rules a typed warehouse table can break (integer columns cannot hold text).
    Cells are checked again when the build reads them (an empty id, a missing image)."""
    present = " AND ".join(f"{c} IS NOT NULL" for c in LOG_REQUIRED)
    return f"{present} AND impressions >= 0 AND clicks >= 0 AND clicks <= impressions"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--context",
        nargs="*",
        default=list(LOG_CONTEXT),
        metavar="COLUMN",
        help=f"context columns the log has (default: all of the contract's: {' '.join(LOG_CONTEXT)})",
    )
    p.add_argument("--source", default="click_log", help="the log's table name in the warehouse")


def run(args: argparse.Namespace) -> int:
    sql = ctr_cells_sql(args.context, args.source)
    print(
        "-- the CTR cells `creative4u data build --logs` reads (save the result as parquet or csv)"
    )
    print(sql + ";")
    print()
    print("-- the rows the cells leave out (count them; the build would have quarantined them)")
    print(f"SELECT COUNT(*) AS rows_left_out FROM {args.source} WHERE NOT ({valid_row_sql()});")
    return 0
