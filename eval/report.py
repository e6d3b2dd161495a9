"""The evaluation report: tables and plots a person reads, from the metrics a machine reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(ci: list[float] | None) -> str:
    return "" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def plots(m: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0.5, 1], [0.5, 1], "--", color="grey", label="perfect calibration")
    curves = [("reliability_uncalibrated", "before calibration")]
    if m.get("calibrated"):
        curves.append(("reliability", "calibrated"))
    for key, label in curves:
        bins = m.get(key) or []
        if bins:
            ax.plot(
                [b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=label
            )
    ax.set_xlabel("confidence in the chosen creative")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {m['ece']:.3f})" if m.get("ece") is not None else "Reliability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=100)
    plt.close(fig)
    made.append("reliability.png")

    names = ["selector", *m.get("baselines", {})]
    accs = [m["accuracy"], *m.get("baselines", {}).values()]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(names, accs, color=["#d62728"] + ["#1f77b4"] * (len(names) - 1))
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="grey", lw=0.8)
    ax.set_xlabel("accuracy against the CTR label")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    made.append("accuracy.png")

    per_dim = m.get("faithfulness_per_dimension")
    if per_dim:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.bar(list(per_dim), list(per_dim.values()))
        ax.set_ylim(0, 1)
        ax.set_ylabel("agreement with truth")
        ax.set_title("Rationale faithfulness per dimension")
        fig.tight_layout()
        fig.savefig(out / "faithfulness.png", dpi=100)
        plt.close(fig)
        made.append("faithfulness.png")
    return made


def write_report(m: dict[str, Any], out: Path) -> Path:
    images = plots(m, out)
    lines = [
        "# Creative selection report",
        "",
        f"Model `{m['model']}`"
        + (f" with adapter `{m['adapter']}`" if m.get("adapter") else "")
        + f", {m['n_pairs']} pairs of `{m['dataset']}` split `{m['split']}`, each judged in "
        f"both orders and combined into one decision, as `/v1/select` serves it "
        f"({m['n_answers']} answers, engine {m['engine']}).",
        "",
        "## Selector",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy of the served decision (95 % interval) | {_pct(m['accuracy'])}"
        f"{_ci(m.get('accuracy_ci'))} |",
        f"| calibration error (ECE), before calibration | {_num(m.get('ece_uncalibrated'))} |",
        f"| calibration error (ECE), calibrated | "
        f"{_num(m.get('ece')) if m.get('calibrated') else 'no calibration stored'} |",
        f"| rationale faithfulness (Q3-Q9 vs truth) | {_pct(m.get('faithfulness'))} |",
        "",
        "Per order (diagnostics of the two answers behind each decision):",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy of one order alone | {_pct(m.get('per_order_accuracy'))}"
        f"{_ci(m.get('per_order_accuracy_ci'))} |",
        f"| well-formed | {_pct(m['well_formed_rate'])} |",
        f"| order-swap agreement | {_pct(m.get('swap_agreement'))} |",
        f"| first-slot rate | {_pct(m.get('first_slot_rate'))} |",
        "",
    ]
    cal = m.get("calibration")
    if cal:
        lines += [
            f"Calibration: temperature {cal['temperature']:.3f}, fit on {cal.get('n', '?')} "
            f"pairs of split `{cal.get('split', '?')}`.",
            "",
        ]
    if m.get("decided_by"):
        lines += [
            "Decided by: " + ", ".join(f"{k} {v}" for k, v in m["decided_by"].items() if v) + ".",
            "",
        ]
    if m.get("stage_seconds"):
        lines += [
            "Time per stage: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in m["stage_seconds"].items())
            + ".",
            "",
        ]
    lines += [
        "## Against the baselines (same pairs)",
        "",
        "| | accuracy |",
        "|---|---|",
        f"| **selector** | **{_pct(m['accuracy'])}**{_ci(m.get('accuracy_ci'))} |",
    ]
    for name, d in m.get("baseline_details", {}).items():
        lines.append(f"| {name} | {_pct(d['accuracy'])}{_ci(d.get('accuracy_ci'))} |")
    if m.get("faithfulness_per_dimension"):
        lines += ["", "## Faithfulness per dimension", "", "| dimension | agreement |", "|---|---|"]
        lines += [f"| {d} | {_pct(v)} |" for d, v in m["faithfulness_per_dimension"].items()]
    for title, key in (
        ("by label confidence", "accuracy_by_label_confidence"),
        ("by category", "accuracy_by_category"),
    ):
        if m.get(key):
            lines += [
                "",
                f"## Accuracy {title}",
                "",
                "| group | pairs | accuracy |",
                "|---|---|---|",
            ]
            lines += [f"| {g} | {d['n']} | {_pct(d['accuracy'])} |" for g, d in m[key].items()]
    lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in images]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
