"""The page's API endpoints through `gradio_client`: `/compare` and `/rank` on the page mounted
at /ui by the real server (tiny model, loopback), and on `creative4u ui` run on its own.

The tiny model has random weights: the tests check what the page returns and how it reports
problems, not the quality of the verdicts. Each endpoint returns its outputs in the order the
page shows them; error boxes come back as updates (`{"value": ..., "visible": ...}`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

# The order of each endpoint's outputs (as built in serve/ui/app.py).
COMPARE = [
    "err_a",
    "err_b",
    "err_text",
    "status",
    "banner",
    "view_a",
    "view_b",
    "slider",
    "ctr",
    "dims",
    "features",
    "rationale",
    "raw",
]
RANK = ["err_files", "err_text", "status", "summary", "ranked", "table", "files", "raw"]


def named(outputs: tuple[Any, ...] | list[Any], names: list[str]) -> dict[str, Any]:
    """Outputs by name; an error box's update unwrapped to its text (None when hidden)."""
    out = {}
    for name, v in zip(names, outputs, strict=True):
        if name.startswith("err") and isinstance(v, dict) and v.get("__type__") == "update":
            v = v.get("value") if v.get("visible", True) else None
        out[name] = v
    return out


@pytest.fixture(scope="module")
def client(ui_server: str, ui_api_key: str):
    from gradio_client import Client

    return Client(f"{ui_server}/ui/", auth=("marketing", ui_api_key), verbose=False)


def compare_args(a: Path, b: Path, query: str = "red dress", title: str = "Nova red dress"):
    from gradio_client import handle_file

    return (handle_file(str(a)), handle_file(str(b)), query, title, True, 0)


def test_the_page_offers_compare_and_rank(client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/compare", "/rank"}
    params = [p["parameter_name"] for p in api["named_endpoints"]["/compare"]["parameters"]]
    assert params[:4] == ["image_a", "image_b", "query_text", "title_text"]


def generations(ui_server: str, ui_api_key: str) -> dict[str, float]:
    """The server's generation counters by purpose (select, probe, chat), from /metrics."""
    import re

    import httpx

    text = httpx.get(f"{ui_server}/metrics", timeout=30).text
    found = re.findall(r'^creative4u_generations_total\{purpose="(\w+)"\} (\S+)$', text, re.M)
    return {k: float(v) for k, v in found}


def test_compare_returns_winner_table_rationale_and_views(
    client, ui_images: dict[str, Path], ui_server: str, ui_api_key: str
) -> None:
    before = generations(ui_server, ui_api_key)
    job = client.submit(*compare_args(ui_images["red"], ui_images["blue"]), api_name="/compare")
    out = named(job.result(timeout=600), COMPARE)
    after = generations(ui_server, ui_api_key)
    # one selection call: the two orders it judges, the streamed one among them; no chat
    # generation on the side
    assert after.get("select", 0) - before.get("select", 0) == 2
    assert after.get("chat", 0) == before.get("chat", 0)
    raw = out["raw"]
    assert raw["winner"] in ("A", "B") and 0.5 <= raw["confidence"] <= 1.0
    assert out["err_a"] is None and out["err_b"] is None and out["status"].startswith("Done")
    assert f"WINNER</span> Creative {raw['winner']}" in out["banner"]
    assert out["dims"]["headers"] == ["Question", "Verdict", "Both orders", "Reason"]
    assert [row[0][:2] for row in out["dims"]["data"]] == ["Q3", "Q4", "Q5", "Q6", "Q7", "Q8", "Q9"]
    assert isinstance(out["rationale"], str) and out["rationale"].strip()
    # the measured features of both creatives, red against blue: the numbers behind a reason
    feats = {row[0]: row[1:] for row in out["features"]["data"]}
    assert out["features"]["headers"] == ["Measured feature", "A", "B", "Higher"]
    assert {"saturation", "glcm contrast", "jpeg quality", "pleasure", "text flesch"} <= set(feats)
    assert all(h in ("A", "B", "same", "same (one title)") for _, _, h in feats.values())
    assert any(k.startswith("title ") for k in feats)
    assert "M2FN" in out["ctr"]  # this server has no CTR model, and the page says so
    # the winner is marked on its view; both views and the slider share one size
    from PIL import Image

    win, lose = ("view_a", "view_b") if raw["winner"] == "A" else ("view_b", "view_a")
    assert out[win]["label"].endswith("winner") and not out[lose]["label"].endswith("winner")
    sizes = {Image.open(p).size for p in (out["view_a"]["value"], out["view_b"]["value"])}
    sizes |= {Image.open(p).size for p in out["slider"]}
    assert len(sizes) == 1

    # the rationale was streamed: an update carried text before the selection result arrived
    streamed = [named(o, COMPARE) for o in job.outputs()]
    assert any(o["rationale"] and o["raw"] is None for o in streamed)


def test_rank_of_four_returns_gallery_table_and_downloads(
    client, ui_images: dict[str, Path]
) -> None:
    from gradio_client import handle_file

    names = ["red", "blue", "green", "gold"]
    files = [handle_file(str(ui_images[n])) for n in names]
    out = named(
        client.predict(files, "red dress", "Nova red dress", True, 0, api_name="/rank"), RANK
    )
    assert out["err_files"] is None and out["status"] == "Done."
    ranking = out["raw"]["ranking"]
    assert sorted(r["id"] for r in ranking) == sorted(f"{n}.png" for n in names)
    assert [r["rank"] for r in ranking] == [1, 2, 3, 4]
    assert len(out["ranked"]) == 4 and out["ranked"][0]["caption"].startswith("#1 ")
    assert [row[1] for row in out["table"]["data"]] == [r["id"] for r in ranking]
    csv_path = next(p for p in out["files"] if p.endswith(".csv"))
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    assert [r["creative"] for r in rows] == [r["id"] for r in ranking]
    assert any(p.endswith(".json") for p in out["files"])


def test_corrupt_upload_is_reported_next_to_its_input(client, ui_images: dict[str, Path]) -> None:
    out = named(
        client.predict(*compare_args(ui_images["red"], ui_images["corrupt"]), api_name="/compare"),
        COMPARE,
    )
    assert out["err_a"] is None
    assert "Creative B is not a usable image" in out["err_b"]
    assert "corrupt or truncated" in out["err_b"] and "Traceback" not in out["err_b"]
    assert out["raw"] is None and "Fix the marked input" in out["status"]


def test_rank_asks_for_three_to_sixteen(client, ui_images: dict[str, Path]) -> None:
    from gradio_client import handle_file

    files = [handle_file(str(ui_images[n])) for n in ("red", "blue")]
    out = named(client.predict(files, "q", "t", True, 0, api_name="/rank"), RANK)
    assert "Upload 3 to 16 creatives" in out["err_files"] and out["raw"] is None


def test_the_mounted_page_wants_the_api_key(ui_server: str) -> None:
    from gradio_client import Client

    with pytest.raises(Exception, match="(?i)login|credentials|auth"):
        Client(f"{ui_server}/ui/", auth=("marketing", "wrong-key"), verbose=False)


def test_standalone_page_against_the_server(
    ui_server: str, ui_api_key: str, ui_standalone, ui_images: dict[str, Path]
) -> None:
    from gradio_client import Client

    url = ui_standalone(ui_server, ui_api_key)
    c = Client(url, auth=("marketing", ui_api_key), verbose=False)
    args = compare_args(ui_images["green"], ui_images["gold"])
    out = named(c.predict(*args[:4], False, 4, api_name="/compare"), COMPARE)
    assert out["raw"]["winner"] in ("A", "B") and len(out["raw"]["orders"]) == 1


def test_standalone_page_with_the_server_down(ui_standalone, ui_images: dict[str, Path]) -> None:
    from gradio_client import Client

    from serve.launch import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    c = Client(ui_standalone(dead), verbose=False)
    out = named(
        c.predict(*compare_args(ui_images["red"], ui_images["blue"]), api_name="/compare"),
        COMPARE,
    )
    assert f"Cannot reach the selection API at {dead}" in out["status"]
    assert "Traceback" not in out["status"] and out["raw"] is None
