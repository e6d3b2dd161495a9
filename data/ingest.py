"""Read click logs of any size and split them into rows that keep the contract and rows that don't.

Logs are scanned by DuckDB, never loaded into memory: real logs have hundreds of millions of rows,
and everything downstream only needs aggregates. Every row that breaks the contract goes to the
quarantine file with a `reason` (one of `REASONS`, for counting) and a `detail` (for a person), so
that nothing is dropped silently and `rows_in == rows_kept + rows_quarantined` always holds.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from creative4u.schema import LOG_CONTEXT, LOG_REQUIRED

# Reasons a row is quarantined, in the order they are checked (a row gets the first that applies).
REASONS: tuple[str, ...] = (
    "malformed csv line",
    "missing value",
    "not a number",
    "not an integer",
    "negative impressions",
    "negative clicks",
    "clicks > impressions",
    "creative with several products or images",
    "image not found",
    "image unreadable",
)
STRING_COLUMNS: tuple[str, ...] = tuple(
    c for c, t in LOG_REQUIRED.items() if t == "string"
) + tuple(c for c in LOG_CONTEXT if c in ("query", "title", "description", "category"))


@dataclass
class IngestResult:
    """The valid rows as a DuckDB view (`valid`), and the counts the dataset card reports."""

    rows_in: int
    rows_kept: int
    rows_quarantined: int
    by_reason: dict[str, int]
    context_columns: list[str]
    images: dict[str, Path] = field(default_factory=dict)  # image value -> file, valid ones only
    source_format: str = "parquet"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def resolve_inputs(logs: str | Path) -> tuple[list[str], str]:
    """The log files behind LOGS (a file, a folder of files, or a glob) and their format."""
    p = Path(logs)
    if p.is_dir():
        files = sorted(str(f) for f in p.iterdir() if f.suffix in (".parquet", ".csv", ".gz"))
    elif any(ch in str(logs) for ch in "*?["):
        files = sorted(glob.glob(str(logs)))
    elif p.is_file():
        files = [str(p)]
    else:
        raise FileNotFoundError(f"click log not found: {logs}")
    if not files:
        raise FileNotFoundError(f"no .parquet or .csv files in {logs}")
    kinds = {"csv" if ".csv" in Path(f).suffixes else "parquet" for f in files}
    if len(kinds) > 1:
        raise ValueError(f"{logs} mixes csv and parquet files; convert them to one format")
    return files, kinds.pop()


def _file_list(files: list[str]) -> str:
    return "[" + ", ".join(_sql_str(f) for f in files) + "]"


def require_columns(cols: list[str], logs: str | Path) -> None:
    """A missing required column is a wrong file, not a broken row: stop and name it."""
    missing = [c for c in LOG_REQUIRED if c not in cols]
    if missing:
        raise ValueError(
            f"click log {logs} lacks required column(s) {', '.join(missing)} "
            f"(required: {', '.join(LOG_REQUIRED)}; found: {', '.join(cols)})"
        )


def _stage_csv(con: Any, files: list[str], staging: Path) -> tuple[str, int, list[dict]]:
    """Convert CSV to one parquet file in a single scan, keeping the lines DuckDB cannot parse.

    Identifier columns are read as text (a product id "007" must not become 7), and unparseable
    lines are collected through DuckDB's reject tables instead of stopping the build.
    """
    header = con.execute(
        f"DESCRIBE SELECT * FROM read_csv({_file_list(files)}, store_rejects=true)"
    ).fetchall()
    names = [r[0] for r in header]
    require_columns(names, ", ".join(files))  # before converting a large file for nothing
    types = ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in STRING_COLUMNS if c in names)
    staged = staging / "log.parquet"
    con.execute("DROP TABLE IF EXISTS reject_errors")
    con.execute("DROP TABLE IF EXISTS reject_scans")
    con.execute(
        f"COPY (SELECT * FROM read_csv({_file_list(files)}, store_rejects=true"
        f"{', types={' + types + '}' if types else ''})) TO {_sql_str(str(staged))} (FORMAT parquet)"
    )
    rejects = con.execute(
        "SELECT s.file_path, e.line, min(e.error_type::VARCHAR), min(e.csv_line) "
        "FROM reject_errors e JOIN reject_scans s USING (scan_id, file_id) "
        "GROUP BY s.file_path, e.line ORDER BY s.file_path, e.line"
    ).fetchall()
    bad = [
        {"file": f, "line": int(line), "error": err.lower(), "raw": raw}
        for f, line, err, raw in rejects
    ]
    return f"read_parquet({_sql_str(str(staged))})", len(bad), bad


def _reason_sql(cols: list[str]) -> str:
    """One CASE expression giving each row its first broken rule (NULL when it keeps the contract)."""
    checks = []
    for c in LOG_REQUIRED:
        if LOG_REQUIRED[c] == "string":
            checks.append(
                f"WHEN {_quote(c)} IS NULL OR trim({_quote(c)}::VARCHAR) = '' THEN 'missing value'"
            )
        else:
            checks.append(
                f"WHEN {_quote(c)} IS NULL OR (try_cast({_quote(c)} AS DOUBLE) IS NOT NULL "
                f"AND isnan(try_cast({_quote(c)} AS DOUBLE))) THEN 'missing value'"
            )
    for c in ("impressions", "clicks"):
        checks.append(f"WHEN try_cast({_quote(c)} AS DOUBLE) IS NULL THEN 'not a number'")
    for c in ("impressions", "clicks"):
        d = f"try_cast({_quote(c)} AS DOUBLE)"
        checks.append(f"WHEN isinf({d}) OR {d} <> floor({d}) THEN 'not an integer'")
    checks.append("WHEN try_cast(impressions AS DOUBLE) < 0 THEN 'negative impressions'")
    checks.append("WHEN try_cast(clicks AS DOUBLE) < 0 THEN 'negative clicks'")
    checks.append(
        "WHEN try_cast(clicks AS DOUBLE) > try_cast(impressions AS DOUBLE) THEN 'clicks > impressions'"
    )
    return "CASE " + " ".join(checks) + " ELSE NULL END"


def check_image(path: Path) -> str | None:
    """None when the file decodes as an image, else a message naming the problem."""
    from creative4u.images import ImageError, load_image

    if not path.is_file():
        return "image not found"
    try:
        load_image(path)
    except ImageError as e:
        return f"image unreadable: {e}"
    return None


def ingest(
    con: Any,
    logs: str | Path,
    images_root: str | Path,
    quarantine_path: Path,
    staging: Path,
    progress: bool = True,
    image_check: Callable[[Path], str | None] = check_image,
) -> IngestResult:
    """Validate the log into the DuckDB view `valid` and write the quarantine file.

    Raises ValueError naming the column when a required column is missing: that is a wrong file,
    not a broken row.
    """
    from tqdm import tqdm

    files, fmt = resolve_inputs(logs)
    staging.mkdir(parents=True, exist_ok=True)
    csv_bad: list[dict] = []
    if fmt == "csv":
        source, n_bad_lines, csv_bad = _stage_csv(con, files, staging)
    else:
        source = f"read_parquet({_file_list(files)}, union_by_name=true)"
        n_bad_lines = 0
    con.execute(f"CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM {source}")
    cols = [r[0] for r in con.execute("DESCRIBE src").fetchall()]
    require_columns(cols, logs)
    context = [c for c in LOG_CONTEXT if c in cols]

    con.execute(
        f"CREATE OR REPLACE TEMP VIEW checked AS SELECT *, {_reason_sql(cols)} AS _reason FROM src"
    )
    # A creative must be one image of one product, or pairs and splits would be ill-defined.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE bad_creatives AS SELECT creative_id::VARCHAR AS creative_id "
        "FROM checked WHERE _reason IS NULL GROUP BY 1 "
        "HAVING count(DISTINCT product_id::VARCHAR) > 1 OR count(DISTINCT image::VARCHAR) > 1"
    )
    distinct_images = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT image::VARCHAR FROM checked WHERE _reason IS NULL "
            "AND creative_id::VARCHAR NOT IN (SELECT creative_id FROM bad_creatives) ORDER BY 1"
        ).fetchall()
    ]
    root = Path(images_root)
    bad_images: list[tuple[str, str, str]] = []
    good_images: dict[str, Path] = {}
    for name in tqdm(distinct_images, desc="checking images", disable=not progress, unit="img"):
        path = root / name
        problem = image_check(path)
        if problem is None:
            good_images[name] = path
        else:
            kind = "image not found" if problem == "image not found" else "image unreadable"
            bad_images.append((name, kind, f"{path}: {problem}"))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE bad_images (image VARCHAR, reason VARCHAR, detail VARCHAR)"
    )
    if bad_images:
        con.executemany("INSERT INTO bad_images VALUES (?, ?, ?)", bad_images)

    con.execute(
        "CREATE OR REPLACE TEMP VIEW classified AS SELECT c.*, "
        "coalesce(c._reason, CASE WHEN c.creative_id::VARCHAR IN (SELECT creative_id FROM bad_creatives) "
        "THEN 'creative with several products or images' END, b.reason) AS reason, "
        "CASE WHEN c._reason IS NULL AND b.reason IS NOT NULL THEN b.detail END AS detail "
        "FROM checked c LEFT JOIN bad_images b ON c._reason IS NULL AND c.image::VARCHAR = b.image"
    )
    original = ", ".join(_quote(c) for c in cols)
    quarantine_path.parent.mkdir(parents=True, exist_ok=True)
    q_cols = f"{original}, reason, detail"
    con.execute(
        f"COPY (SELECT {q_cols} FROM classified WHERE reason IS NOT NULL) "
        f"TO {_sql_str(str(quarantine_path))} (FORMAT parquet)"
    )
    if csv_bad:
        # Lines DuckDB could not parse have no columns; they join the quarantine as raw text.
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(quarantine_path)
        schema = pa.schema([f.with_nullable(True) for f in table.schema])
        table = table.cast(schema)
        extra = {c: pa.nulls(len(csv_bad), type=table.schema.field(c).type) for c in cols}
        extra["reason"] = pa.array(["malformed csv line"] * len(csv_bad), pa.string())
        extra["detail"] = pa.array(
            [f"{b['file']} line {b['line']}: {b['error']}: {b['raw']}" for b in csv_bad],
            pa.string(),
        )
        pq.write_table(
            pa.concat_tables([table, pa.table(extra, schema=table.schema)]), quarantine_path
        )

    counts = dict(
        con.execute(
            "SELECT coalesce(reason, ''), count(*) FROM classified GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    kept = int(counts.pop("", 0))
    by_reason = {r: int(counts[r]) for r in REASONS if counts.get(r)}
    if n_bad_lines:
        by_reason = {"malformed csv line": n_bad_lines, **by_reason}
    quarantined = sum(by_reason.values())
    rows_in = int(con.execute("SELECT count(*) FROM src").fetchone()[0]) + n_bad_lines

    casts = []
    for c in cols:
        if c in LOG_REQUIRED and LOG_REQUIRED[c] == "int":
            casts.append(f"try_cast({_quote(c)} AS DOUBLE)::BIGINT AS {_quote(c)}")
        elif c in STRING_COLUMNS:
            casts.append(f"{_quote(c)}::VARCHAR AS {_quote(c)}")
        elif c in LOG_REQUIRED or c in LOG_CONTEXT:
            casts.append(_quote(c))
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW valid AS SELECT {', '.join(casts)} "
        "FROM classified WHERE reason IS NULL"
    )
    if rows_in != kept + quarantined:  # pragma: no cover - a bug, not a data problem
        raise RuntimeError(f"row counts do not add up: {rows_in} != {kept} + {quarantined}")
    return IngestResult(
        rows_in=rows_in,
        rows_kept=kept,
        rows_quarantined=quarantined,
        by_reason=by_reason,
        context_columns=context,
        images=good_images,
        source_format=fmt,
    )
