"""Shape of the results (a ``figure`` per reported number), the rich tables, and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table


def figure(value: float | None, unit: str, goal: str | None = None, met: bool | None = None, note: str = "") -> dict:
    """One reported number: ``value`` in ``unit`` ("x" for a ratio), with an optional goal and whether it is met."""
    out: dict = {"value": None if value is None else float(value), "unit": unit}
    if goal is not None:
        out |= {"goal": goal, "met": bool(met)}
    if note:
        out["note"] = note
    return out


def format_value(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    digits = 3 if abs(value) < 10 else 1
    return f"{value:.{digits}f}{'x' if unit == 'x' else ' ' + unit}"


def figures_table(name: str, result: dict) -> Table:
    """The ``figures`` of one benchmark as a table: value, goal, and whether it is met."""
    table = Table(title=name, title_justify="left")
    for column in ("figure", "value", "goal", "met"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for label, fig in result.get("figures", {}).items():
        met = {True: "[green]yes[/]", False: "[red]no[/]"}.get(fig.get("met"), "")
        table.add_row(label, format_value(fig["value"], fig["unit"]), fig.get("goal", ""), met)
    return table


def rows_table(name: str, rows: list[dict], columns: list[str]) -> Table:
    """A list of flat dicts (e.g. the scaling grid) as a table of the given columns."""
    table = Table(title=name, title_justify="left")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    return table


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "-" if value is None else str(value)


def print_results(results: dict, console: Console | None = None) -> None:
    """Every benchmark's figures, the scaling grid and the reward profile, as rich tables."""
    console = console or Console(width=max(Console().width, 120))
    for name, result in results["benchmarks"].items():
        if "skipped" in result:
            console.print(f"[bold]{name}[/]: skipped ({result['skipped']})")
            continue
        if result.get("figures"):
            console.print(figures_table(name, result))
        if result.get("rows"):
            console.print(rows_table(f"{name}: grid", result["rows"], list(result["rows"][0])))
        if result.get("stages_s"):
            stages = [{"stage": k, "seconds": v} for k, v in result["stages_s"].items()]
            console.print(rows_table(f"{name}: stages of the epipolar core", stages, ["stage", "seconds"]))
        if result.get("profile"):
            console.print(rows_table(f"{name}: profile", result["profile"], list(result["profile"][0])))


def write_json(results: dict, path: Path) -> Path:
    """Write ``results`` (plain JSON types; non-finite floats become null) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(results), indent=2) + "\n", encoding="utf-8")
    return path


def finite(value: object) -> object:
    """``value`` with every non-finite float replaced by None (plain JSON)."""
    return _finite(value)


def _finite(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def machine_line(info: dict) -> str:
    """One sentence saying where and with what a result was measured."""
    load = info.get("load_average_1m")
    return (
        f"Measured {info['date_utc']} on {info['cpu']} ({info['cpu_cores']} cores, {info['torch_threads']} torch "
        f"thread(s), 1-min load average {'-' if load is None else f'{load:.1f}'}), GPU: {info['gpu'] or 'none'}; "
        f"torch {info['torch']}, diffusers {info['diffusers']}, kornia {info['kornia']}, "
        f"opencv {info['opencv-python-headless']}; code {info.get('git')}."
    )


def markdown(results: dict) -> str:
    """The figures of every benchmark (and the scaling grid) as Markdown tables, with the machine on top."""
    lines = [
        f"{machine_line(results['machine'])} Total run: {results['seconds']['total']:.0f} s.",
        "",
        "| benchmark | figure | value | goal | met |",
        "|---|---|---:|---|---|",
    ]
    for name, result in results["benchmarks"].items():
        if "skipped" in result:
            lines.append(f"| {name} | skipped: {result['skipped']} | | | |")
        for label, fig in result.get("figures", {}).items():
            met = {True: "yes", False: "**no**"}.get(fig.get("met"), "")
            lines.append(
                f"| {name} | {label} | {format_value(fig['value'], fig['unit'])} | {fig.get('goal', '')} | {met} |"
            )
    for name, result in results["benchmarks"].items():
        if result.get("rows"):
            columns = list(result["rows"][0])
            lines += ["", f"{name}:", "", "| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
            lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in result["rows"]]
    return "\n".join(lines) + "\n"
