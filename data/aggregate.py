"""From valid log rows to the two tables the build needs: the impression table (M2FN's training
data, written straight to parquet by DuckDB) and CTR per creative and query (the pair miner's
input, small enough for memory: one row per creative and query, however long the log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from creative4u.schema import IMPRESSION_KEYS


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def creative_query_ctr(con: Any, context: list[str]) -> pd.DataFrame:
    """CTR per (product, query, creative), clicks and impressions summed over context cells.

    A log without a `query` column (or rows without a query) count as the empty query: pairs are
    then mined per product. Title and category are per product (the smallest value when a product
    has several, so the result does not depend on row order).
    """
    query = "coalesce(query, '')" if "query" in context else "''"
    per_product = ["min(title) AS title" if "title" in context else "'' AS title"]
    if "category" in context:
        per_product.append("min(category) AS category")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE products AS SELECT product_id, {', '.join(per_product)} "
        "FROM valid GROUP BY product_id"
    )
    df = con.execute(
        f"SELECT c.*, p.* EXCLUDE (product_id) FROM ("
        f"  SELECT product_id, {query} AS query, creative_id, min(image) AS image,"
        f"  sum(impressions)::BIGINT AS impressions, sum(clicks)::BIGINT AS clicks"
        f"  FROM valid GROUP BY product_id, {query}, creative_id"
        f") c JOIN products p USING (product_id) ORDER BY c.product_id, c.query, c.creative_id"
    ).df()
    df["title"] = df["title"].fillna("").astype(str)
    return df


def write_impressions(con: Any, context: list[str], splits: dict[str, str], out: Path) -> int:
    """Write the impression table (per creative x context cell, schema.IMPRESSION_KEYS) with the
    product's split, in one DuckDB pass. Returns the number of rows written."""
    keys = [
        k for k in IMPRESSION_KEYS if k in ("creative_id", "product_id", "image") or k in context
    ]
    con.execute("CREATE OR REPLACE TEMP TABLE product_split (product_id VARCHAR, split VARCHAR)")
    if splits:
        con.executemany("INSERT INTO product_split VALUES (?, ?)", sorted(splits.items()))
    cols = ", ".join(f"v.{_q(k)}" for k in keys)
    order = ", ".join(f"{_q(k)} NULLS FIRST" for k in keys)
    con.execute(
        f"COPY (SELECT {cols}, sum(v.impressions)::BIGINT AS impressions, "
        f"sum(v.clicks)::BIGINT AS clicks, "
        f"CASE WHEN sum(v.impressions) > 0 THEN sum(v.clicks) / sum(v.impressions) ELSE 0.0 END AS ctr, "
        f"any_value(s.split) AS split "
        f"FROM valid v JOIN product_split s USING (product_id) "
        f"GROUP BY {cols} ORDER BY {order}) TO '{str(out).replace(chr(39), chr(39) * 2)}' "
        f"(FORMAT parquet)"
    )
    return int(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])
