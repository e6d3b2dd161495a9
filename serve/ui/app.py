"""The side-by-side comparison page: compare two creatives, rank several, see why.

`build_ui(api)` returns the `gr.Blocks` that talks to the selection API only through `api`
(HTTP), so the same page is mounted at `/ui` by `creative4u serve` and run on its own by
`creative4u ui --server URL`. Its two named endpoints, `/compare` and `/rank`, are what the
buttons call, and what `gradio_client` calls too.
"""

from __future__ import annotations

import io
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from creative4u.images import to_data_url
from serve.config import Limits
from serve.ui import render
from serve.ui.api import APIProblem, SelectionAPI
from serve.ui.examples import Examples, try_load_examples
from serve.ui.images import (
    UploadProblem,
    canvas_size,
    letterbox,
    mark_winner,
    read_upload,
)

MIN_RANK, MAX_RANK = 3, 16

INTRO = """
# Which creative will users click more, and why?
Upload two ad creatives, say what the user searched for and what the product is, and the model
compares them side by side: it names the winner, says how sure it is, answers each question of
the evaluation protocol with a reason, and checks itself by judging the pair again with A and B
swapped. Rank several creatives at once in the second tab. New here? Click an example below.
"""

CSS = """
.c4u-error { color: #b42318; background: #fef3f2; border: 1px solid #fecdca;
  border-radius: 8px; padding: 6px 10px; }
.c4u-error p { margin: 0; }
.c4u-banner { border: 2px solid #168c4a; border-radius: 10px; padding: 12px 16px;
  background: #f0faf4; }
.c4u-winner { font-size: 1.5em; font-weight: 700; color: #0f6b38; }
.c4u-badge { background: #168c4a; color: white; border-radius: 6px; padding: 1px 8px;
  font-size: 0.7em; letter-spacing: 0.06em; vertical-align: middle; }
.c4u-facts { display: flex; flex-wrap: wrap; gap: 16px; margin: 6px 0; }
.c4u-confidence { font-weight: 600; }
.c4u-decided { color: #555; font-size: 0.9em; }
.c4u-ctr { margin: 6px 0; }
.c4u-ctr-title { font-weight: 600; margin-bottom: 4px; }
.c4u-ctr-row { display: flex; align-items: center; gap: 8px; margin: 3px 0; }
.c4u-ctr-label { width: 9em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.c4u-track { flex: 1; background: #eceef2; border-radius: 4px; height: 18px; }
.c4u-bar { display: block; height: 18px; border-radius: 4px; background: #7a8699; }
.c4u-bar-win { background: #168c4a; }
.c4u-ctr-value { width: 5em; text-align: right; font-variant-numeric: tabular-nums; }
.c4u-muted { color: #666; }
.c4u-winner-view { border: 4px solid #168c4a !important; border-radius: 10px; }
"""


def upload_path(value: Any) -> str | None:
    """The file behind an input value: a path (examples), or the upload's payload (the buttons
    run with `preprocess=False`, so Gradio never decodes an upload and a corrupt file reaches
    the handler, which reports it next to its input instead of failing inside Gradio)."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value.get("path")
    return str(value)


def upload_name(value: Any) -> str:
    """The name the person gave the file, for messages and ranking ids."""
    if isinstance(value, dict) and value.get("orig_name"):
        return str(value["orig_name"])
    return Path(upload_path(value) or "creative").name


def _error(message: str | None) -> dict[str, Any]:
    """An error box's update: shown with `message`, or hidden."""
    return gr.update(value=message or "", visible=bool(message))


def _options(both_orders: bool, max_tokens: float | None) -> dict[str, Any]:
    opts: dict[str, Any] = {"both_orders": bool(both_orders)}
    if max_tokens:
        opts["max_tokens"] = int(max_tokens)
    return opts


def measured_features(raws: list[bytes], title: str) -> Any:
    """`features.measure` of both creatives (OCR included, JPEG quality from the files' own
    tables) and the title's readability, as the page's table."""
    from creative4u.ad_quality import quantization_of, readability
    from creative4u.features import measure, tesseract_available
    from creative4u.images import load_image

    ocr = tesseract_available()
    fa, fb = (
        measure(load_image(r, allow_paths=False), ocr=ocr, quantization=quantization_of(r))
        for r in raws
    )
    return render.feature_rows(fa, fb, readability(title) if (title or "").strip() else None)


def _unexpected(e: Exception) -> str:
    """A bug must not reach the page as a stack trace: log it, say it in one line."""
    traceback.print_exc()
    return f"Something went wrong in the page itself ({type(e).__name__}: {e}). Please try again."


@dataclass
class Page:
    """The page and the folders it serves files from (Gradio serves nothing else)."""

    blocks: gr.Blocks
    allowed_paths: list[str]


def _creative_input(side: str) -> tuple[Any, Any]:
    """One upload slot of the compare tab and the error line under it (its own, so a bad file is
    reported next to the input that holds it)."""
    with gr.Column():
        image = gr.Image(
            label=f"Creative {side.upper()}",
            type="filepath",
            sources=["upload", "clipboard"],
            height=300,
            elem_id=f"c4u-input-{side}",
        )
        error = gr.Markdown(visible=False, elem_id=f"c4u-error-{side}", elem_classes="c4u-error")
    return image, error


def build_ui(
    api: SelectionAPI, limits: Limits | None = None, examples: Examples | None = None
) -> Page:
    """The page. `examples=None` simulates CreativeSim examples into the cache on first use."""
    limits = limits or Limits()
    max_rank = min(MAX_RANK, limits.max_creatives)
    example_note = None
    if examples is None:
        examples, example_note = try_load_examples()
    downloads_dir = Path(tempfile.mkdtemp(prefix="creative4u-ui-"))

    with gr.Blocks(title="creative4u: which creative wins?", analytics_enabled=False) as ui:
        gr.Markdown(INTRO)
        with gr.Tabs():
            # ---------------------------------------------------------------- compare ----
            with gr.Tab("Compare two", id="compare"):
                with gr.Row(equal_height=True):
                    img_a, err_a = _creative_input("a")
                    img_b, err_b = _creative_input("b")
                with gr.Row():
                    query = gr.Textbox(
                        label="Search query",
                        placeholder="e.g. brown hoodie",
                        info="What the user searched for: the interest a creative should match.",
                        elem_id="c4u-query",
                    )
                    title = gr.Textbox(
                        label="Product title",
                        placeholder="e.g. Orbit brown hoodie",
                        info="The product both creatives advertise.",
                        elem_id="c4u-title",
                    )
                err_text = gr.Markdown(
                    visible=False, elem_id="c4u-error-text", elem_classes="c4u-error"
                )
                with gr.Accordion("Options", open=False):
                    both = gr.Checkbox(
                        True,
                        label="Judge both orders, (A, B) and (B, A): twice the work, and it "
                        "shows when the model only prefers a position",
                    )
                    max_tokens = gr.Number(
                        0,
                        label="Tokens per judgement (0: the server's default)",
                        precision=0,
                        minimum=0,
                        maximum=limits.max_tokens,
                    )
                compare_btn = gr.Button("Compare", variant="primary", elem_id="c4u-compare")
                status = gr.Markdown(elem_id="c4u-status")

                compare_examples_slot = gr.Column()

                banner = gr.HTML(elem_id="c4u-verdict", js_on_load=None)
                with gr.Tabs():
                    with gr.Tab("Side by side"):
                        with gr.Row(equal_height=True):
                            view_a = gr.Image(
                                label="A", interactive=False, elem_id="c4u-view-a", format="png"
                            )
                            view_b = gr.Image(
                                label="B", interactive=False, elem_id="c4u-view-b", format="png"
                            )
                    with gr.Tab("Swipe between them"):
                        slider = gr.ImageSlider(
                            label="Drag the handle: A on the left, B on the right",
                            interactive=False,
                            format="png",
                            elem_id="c4u-slider",
                        )
                ctr = gr.HTML(elem_id="c4u-ctr", js_on_load=None)
                dims = gr.Dataframe(
                    headers=render.DIMENSION_COLUMNS,
                    label="Per-dimension verdicts (from the order that agrees with the winner)",
                    interactive=False,
                    wrap=True,
                    elem_id="c4u-dimensions",
                )
                with gr.Accordion("Measured features of A and B", open=False):
                    features = gr.Dataframe(
                        headers=render.FEATURE_COLUMNS,
                        label="What the image measurements say (colour, texture, JPEG quality, "
                        "composition, text and its readability), measured on this page's server",
                        interactive=False,
                        elem_id="c4u-features",
                    )
                rationale = gr.Textbox(
                    label="Rationale (written by the model; streamed as it is generated)",
                    lines=10,
                    max_lines=30,
                    interactive=False,
                    elem_id="c4u-rationale",
                )
                with gr.Accordion("Full API response (JSON)", open=False):
                    raw = gr.JSON(elem_id="c4u-raw")

            # ------------------------------------------------------------------- rank ----
            with gr.Tab("Rank several", id="rank"):
                gr.Markdown(
                    f"Upload {MIN_RANK} to {max_rank} creatives of one product. Every pair is "
                    "compared (in both orders, unless switched off) and the results are combined "
                    "into one ranking. The work grows with the square of the number of creatives."
                )
                files = gr.File(
                    label=f"Creatives ({MIN_RANK} to {max_rank} images)",
                    file_count="multiple",
                    file_types=["image"],
                    elem_id="c4u-rank-files",
                )
                err_files = gr.Markdown(
                    visible=False, elem_id="c4u-error-rank", elem_classes="c4u-error"
                )
                with gr.Row():
                    r_query = gr.Textbox(
                        label="Search query", placeholder="e.g. brown hoodie", elem_id="c4u-r-query"
                    )
                    r_title = gr.Textbox(
                        label="Product title",
                        placeholder="e.g. Orbit brown hoodie",
                        elem_id="c4u-r-title",
                    )
                r_err_text = gr.Markdown(
                    visible=False, elem_id="c4u-error-r-text", elem_classes="c4u-error"
                )
                with gr.Accordion("Options", open=False):
                    r_both = gr.Checkbox(True, label="Judge every pair in both orders")
                    r_max_tokens = gr.Number(
                        0,
                        label="Tokens per judgement (0: the server's default)",
                        precision=0,
                        minimum=0,
                        maximum=limits.max_tokens,
                    )
                rank_btn = gr.Button("Rank", variant="primary", elem_id="c4u-rank")
                r_status = gr.Markdown(elem_id="c4u-r-status")
                rank_examples_slot = gr.Column()
                r_summary = gr.HTML(elem_id="c4u-rank-summary", js_on_load=None)
                ranked = gr.Gallery(
                    label="Ranked, best first",
                    columns=4,
                    object_fit="contain",
                    height="auto",
                    elem_id="c4u-ranked",
                )
                r_table = gr.Dataframe(
                    headers=render.RANK_COLUMNS,
                    label="Ranking and the reasons behind each placement",
                    interactive=False,
                    wrap=True,
                    elem_id="c4u-rank-table",
                )
                r_files = gr.File(
                    label="Download the ranking (CSV, JSON)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="c4u-rank-downloads",
                )
                with gr.Accordion("Full API response (JSON)", open=False):
                    r_raw = gr.JSON(elem_id="c4u-rank-raw")

        # ------------------------------------------------------------------- handlers ----
        compare_outputs = [
            err_a,
            err_b,
            err_text,
            status,
            banner,
            view_a,
            view_b,
            slider,
            ctr,
            dims,
            features,
            rationale,
            raw,
        ]

        def cleared(message: str = "") -> dict[Any, Any]:
            return {
                err_a: _error(None),
                err_b: _error(None),
                err_text: _error(None),
                status: message,
                banner: "",
                view_a: None,
                view_b: None,
                slider: None,
                ctr: "",
                dims: render.dimension_rows({}),
                features: render.feature_rows(None, None),
                rationale: "",
                raw: None,
            }

        def compare(
            image_a: str | None,
            image_b: str | None,
            query_text: str,
            title_text: str,
            both_orders: bool = True,
            tokens: float | None = 0,
        ) -> Iterator[dict[Any, Any]]:
            """Two creatives -> winner, confidence, reasons, rationale (streamed), CTRs."""
            state = cleared("Reading the creatives…")
            yield state
            try:
                raws: list[bytes | None] = [None, None]
                for i, (path, box, what) in enumerate(
                    ((image_a, err_a, "Creative A"), (image_b, err_b, "Creative B"))
                ):
                    try:
                        raws[i] = read_upload(upload_path(path), what, limits)
                    except UploadProblem as e:
                        state[box] = _error(str(e))
                if not (query_text or "").strip() and not (title_text or "").strip():
                    state[err_text] = _error(
                        "Enter the search query or the product title (ideally both): the model "
                        "judges creatives for a user and a product."
                    )
                if any(r is None for r in raws) or state[err_text]["visible"]:
                    state[status] = "Fix the marked inputs, then compare again."
                    yield state
                    return
                urls = [
                    to_data_url(raws[0], upload_name(image_a)),  # type: ignore[arg-type]
                    to_data_url(raws[1], upload_name(image_b)),  # type: ignore[arg-type]
                ]
                opts = _options(both_orders, tokens)
                state[status] = "The model is comparing the creatives…"
                yield state
                text, result = "", None
                for item in api.select_stream(urls, query_text, title_text, opts):
                    if isinstance(item, str):
                        text += item
                        state[rationale] = text
                        yield state
                    else:
                        result = item
                if result is None:
                    raise APIProblem("The server ended the selection without a result.")
                images = [Image.open(io.BytesIO(r)) for r in raws]  # type: ignore[arg-type]
                size = canvas_size(images)
                boxed = [letterbox(im, size) for im in images]
                w = result["winner"]
                state.update(
                    {
                        status: "Done." if both_orders else "Done (one order only).",
                        banner: render.verdict_banner(result),
                        view_a: mark_winner(boxed[0]) if w == "A" else boxed[0],
                        view_b: mark_winner(boxed[1]) if w == "B" else boxed[1],
                        slider: (boxed[0], boxed[1]),
                        ctr: render.ctr_bars(
                            [("A", result["ctr"].get("a")), ("B", result["ctr"].get("b"))], w
                        ),
                        dims: render.dimension_rows(result),
                        features: measured_features(raws, title_text),  # type: ignore[arg-type]
                        rationale: result.get("rationale")
                        or text.strip()
                        or "(the model wrote no reasoning text)",
                        raw: result,
                    }
                )
                state[view_a] = gr.update(
                    value=state[view_a], label="A — winner" if w == "A" else "A"
                )
                state[view_b] = gr.update(
                    value=state[view_b], label="B — winner" if w == "B" else "B"
                )
                yield state
            except APIProblem as e:
                where = e.creative_index()
                if where in (0, 1):
                    state[(err_a, err_b)[where]] = _error(
                        f"The server refused Creative {'AB'[where]}: {e.message}"
                    )
                    state[status] = "Fix the marked input, then compare again."
                elif e.param in ("query", "title"):
                    state[err_text] = _error(f"The server refused the {e.param}: {e.message}")
                    state[status] = "Fix the marked input, then compare again."
                else:
                    state[status] = f"⚠ {e.message}"
                yield state
            except Exception as e:  # noqa: BLE001 - shown as one line, logged in full
                state[status] = f"⚠ {_unexpected(e)}"
                yield state

        compare_inputs = [img_a, img_b, query, title, both, max_tokens]
        compare_btn.click(
            compare,
            compare_inputs,
            compare_outputs,
            api_name="compare",
            concurrency_limit=4,
            preprocess=False,
        )

        def check_one(value: Any, what: str) -> dict[str, Any]:
            if not upload_path(value):
                return _error(None)
            try:
                read_upload(upload_path(value), what, limits)
                return _error(None)
            except UploadProblem as e:
                return _error(str(e))

        for box, err, what in ((img_a, err_a, "Creative A"), (img_b, err_b, "Creative B")):
            box.upload(
                lambda v, what=what: check_one(v, what),
                box,
                err,
                api_visibility="private",
                preprocess=False,
            )
        img_a.clear(lambda: _error(None), None, err_a, api_visibility="private")
        img_b.clear(lambda: _error(None), None, err_b, api_visibility="private")

        # ---- rank ----------------------------------------------------------------------
        rank_outputs = [err_files, r_err_text, r_status, r_summary, ranked, r_table, r_files, r_raw]

        def rank_cleared(message: str = "") -> dict[Any, Any]:
            return {
                err_files: _error(None),
                r_err_text: _error(None),
                r_status: message,
                r_summary: "",
                ranked: None,
                r_table: render.rank_rows({}),
                r_files: None,
                r_raw: None,
            }

        def check_files(values: list[Any]) -> tuple[list[bytes], str | None]:
            if not MIN_RANK <= len(values) <= max_rank:
                return [], (
                    f"Upload {MIN_RANK} to {max_rank} creatives to rank; there are "
                    f"{len(values)}. (To compare just two, use the Compare tab.)"
                )
            raws, problems = [], []
            for v in values:
                try:
                    raws.append(read_upload(upload_path(v), upload_name(v), limits))
                except UploadProblem as e:
                    problems.append(str(e))
            return raws, (" ".join(problems) or None)

        def unique_ids(values: list[Any]) -> list[str]:
            ids: list[str] = []
            for v in values:
                name, k = upload_name(v), 2
                while name in ids:
                    name, k = f"{upload_name(v)} ({k})", k + 1
                ids.append(name)
            return ids

        def rank(
            uploads: list[Any] | None,
            query_text: str,
            title_text: str,
            both_orders: bool = True,
            tokens: float | None = 0,
        ) -> Iterator[dict[Any, Any]]:
            """3..16 creatives -> a ranked gallery with scores, CTRs and reasons, CSV and JSON."""
            state = rank_cleared("Reading the creatives…")
            yield state
            try:
                values = list(uploads or [])
                raws, problem = check_files(values)
                if problem:
                    state[err_files] = _error(problem)
                    state[r_status] = "Fix the marked input, then rank again."
                    yield state
                    return
                if not (query_text or "").strip() and not (title_text or "").strip():
                    state[r_err_text] = _error("Enter the search query or the product title.")
                    state[r_status] = "Fix the marked input, then rank again."
                    yield state
                    return
                ids = unique_ids(values)
                creatives = [
                    {"id": i, "image": to_data_url(r, i)} for i, r in zip(ids, raws, strict=True)
                ]
                n = len(values)
                pairs = n * (n - 1) // 2
                state[r_status] = (
                    f"The model is comparing {pairs} pairs"
                    f"{' in both orders' if both_orders else ''}…"
                )
                yield state
                result = api.rank(creatives, query_text, title_text, _options(both_orders, tokens))
                by_id = dict(zip(ids, (upload_path(v) for v in values), strict=True))
                out_dir = Path(tempfile.mkdtemp(dir=downloads_dir))
                csv_path, json_path = out_dir / "ranking.csv", out_dir / "ranking.json"
                csv_path.write_text(render.rank_csv(result))
                json_path.write_text(render.rank_json(result))
                state.update(
                    {
                        r_status: "Done.",
                        r_summary: render.rank_summary(result),
                        ranked: [
                            (by_id[row["id"]], render.rank_caption(row))
                            for row in result["ranking"]
                        ],
                        r_table: render.rank_rows(result),
                        r_files: [str(csv_path), str(json_path)],
                        r_raw: result,
                    }
                )
                yield state
            except APIProblem as e:
                where = e.creative_index()
                if where is not None or e.param == "creatives":
                    name = f" ({unique_ids(values)[where]})" if where is not None else ""
                    state[err_files] = _error(f"The server refused a creative{name}: {e.message}")
                    state[r_status] = "Fix the marked input, then rank again."
                elif e.param in ("query", "title"):
                    state[r_err_text] = _error(f"The server refused the {e.param}: {e.message}")
                else:
                    state[r_status] = f"⚠ {e.message}"
                yield state
            except Exception as e:  # noqa: BLE001
                state[r_status] = f"⚠ {_unexpected(e)}"
                yield state

        rank_inputs = [files, r_query, r_title, r_both, r_max_tokens]
        rank_btn.click(
            rank,
            rank_inputs,
            rank_outputs,
            api_name="rank",
            concurrency_limit=2,
            preprocess=False,
        )

        def check_uploaded(uploads: list[Any] | None) -> dict[str, Any]:
            values = list(uploads or [])
            problems = []
            for v in values:
                try:
                    read_upload(upload_path(v), upload_name(v), limits)
                except UploadProblem as e:
                    problems.append(str(e))
            if len(values) > max_rank:
                problems.append(f"At most {max_rank} creatives can be ranked at once.")
            return _error(" ".join(problems) or None)

        files.upload(check_uploaded, files, err_files, api_visibility="private", preprocess=False)

        # ---- examples --------------------------------------------------------------------
        with compare_examples_slot:
            if examples is not None:
                gr.Examples(
                    examples=[[p.image_a, p.image_b, p.query, p.title] for p in examples.pairs],
                    inputs=[img_a, img_b, query, title],
                    outputs=compare_outputs,
                    fn=compare,
                    run_on_click=True,
                    cache_examples=False,
                    label="Examples from CreativeSim (click one to run it)",
                    example_labels=[
                        f"“{p.query}” · true CTR A {render.percent(p.true_ctr_a, 1)} vs "
                        f"B {render.percent(p.true_ctr_b, 1)}"
                        for p in examples.pairs
                    ],
                    api_visibility="private",
                )
            else:
                gr.Markdown(example_note or "")
        with rank_examples_slot:
            if examples is not None:
                gr.Examples(
                    examples=[[examples.rank.images, examples.rank.query, examples.rank.title]],
                    inputs=[files, r_query, r_title],
                    outputs=rank_outputs,
                    fn=rank,
                    run_on_click=True,
                    cache_examples=False,
                    label="Example from CreativeSim (click to run it)",
                    example_labels=[
                        f"{len(examples.rank.images)} creatives for “{examples.rank.query}” · "
                        "true CTRs "
                        + ", ".join(render.percent(c, 1) for c in examples.rank.true_ctr)
                    ],
                    api_visibility="private",
                )

    return Page(ui, _allowed_paths(examples, downloads_dir))


def _allowed_paths(examples: Examples | None, downloads_dir: Path) -> list[str]:
    """Folders Gradio may serve files from: the example creatives and the downloads."""
    paths = {str(downloads_dir)}
    if examples is not None:
        paths |= {str(Path(p).parent) for p in examples.rank.images}
        paths |= {str(Path(p.image_a).parent) for p in examples.pairs}
    return sorted(paths)
