"""Reproduction report: our benchmark results next to the published D3S numbers, as Markdown and HTML.

    python -m d3s_vot.report --vot-workspace workspace_vot2018 [--vot-workspace workspace_vot2016] \\
        [--got10k-report reports/GOT-10k/D3S] [--trackingnet-json tn.json] [--tracker D3S] \\
        [--davis-json results/davis2017/scores.json] [--out report.md] [--html report.html]

Everything in the tables comes from result files written by the official tools (nothing is re-run):

* a VOT workspace: the newest ``WS/analysis/*.json`` of ``vot analysis --format json`` that holds the
  tracker (baseline A and EAO, realtime EAO, unsupervised AO; the Python toolkit's definitions), the legacy
  (Matlab) EAO and the failure rate of the published tables, both computed here from ``WS/results`` with
  :mod:`d3s_vot.legacy_eao`, and the FPS from the toolkit's timing files (:mod:`d3s_vot.vot_speed`);
* GOT-10k: the toolkit's ``performance.json`` (or the ``--json`` file of ``python -m d3s_vot.got10k_eval``);
* TrackingNet: the ``--json`` file of ``python -m d3s_vot.trackingnet_eval run|score``.
* DAVIS 2016/2017: the scores JSON of ``python -m d3s_vot.davis_eval`` (``RESULTS/scores.json``).

The published numbers live in ``d3s_vot/data/paper_results.json`` with a source per number. Inputs that are
not given, or hold no results for the tracker, are left out with a note; an unreadable file is an error
naming it.
"""
from __future__ import annotations

import argparse
import html
import json
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from d3s_vot.common.io_utils import atomic_write_text
from d3s_vot.common.cli import CliArgumentParser, UserError, run_cli

REFERENCE_FORMAT = "d3s_vot.paper_results/1"
STACK_BENCHMARKS = {"vot2018/shortterm": "VOT2018", "vot2016/rgb": "VOT2016"}
UNIT_DIGITS = {"fraction": 3, "failures per 100 frames": 3, "percent": 1, "frames per second": 1, "count": 2}
MISSING = "n/a"


class ReportError(UserError):
    """An unreadable or malformed input file: reported as one ``error:`` line naming the file."""


# --- published numbers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One published number (paper, or the seed reproduction) with where it comes from."""

    value: Optional[float]
    verified: bool
    source: str


@dataclass(frozen=True)
class ReferenceEntry:
    id: str
    benchmark: str
    metric: str
    unit: str
    paper: Reference
    seed: Reference


def load_references(path: Optional[Path] = None) -> Dict[str, ReferenceEntry]:
    """The published numbers (``d3s_vot/data/paper_results.json`` by default), keyed by id (``vot2018.eao``)."""
    source = str(path) if path else "d3s_vot/data/paper_results.json"
    try:
        if path is None:
            text = resources.files("d3s_vot").joinpath("data/paper_results.json").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{source}: cannot read the published numbers ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != REFERENCE_FORMAT:
        raise ReportError(f"{source}: not a {REFERENCE_FORMAT} file")
    entries = {}
    try:
        for item in doc["results"]:
            refs = [Reference(None if item[k]["value"] is None else float(item[k]["value"]),
                              bool(item[k]["verified"]), str(item[k]["source"])) for k in ("paper", "seed")]
            entries[item["id"]] = ReferenceEntry(item["id"], item["benchmark"], item["metric"], item["unit"], *refs)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{source}: malformed entry ({type(exc).__name__}: {exc})") from None
    return entries


# --- report model -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One table line: our number and (through ``ref``) the published ones in the same unit."""

    metric: str
    ours: Optional[float]
    unit: str
    ref: Optional[str] = None  # id in paper_results.json
    note: str = ""


@dataclass
class Section:
    title: str
    source: str
    rows: List[Row] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


@dataclass
class Report:
    tracker: str
    sections: List[Section] = field(default_factory=list)
    omitted: List[str] = field(default_factory=list)
    references: Dict[str, ReferenceEntry] = field(default_factory=dict)


def _finite(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- VOT ----------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None


def parse_vot_analysis(doc: Any, tracker: str, source: str) -> Optional[Dict[tuple, Any]]:
    """``{(experiment, analysis class name): value}`` of one tracker; None when the file does not hold it.

    Layout (vot-toolkit 0.7.4): ``results[experiment]["results"]`` is aligned with
    ``results[experiment]["parameters"]["analyses"]`` and each entry with ``trackers`` (in order).
    """
    try:
        trackers = list(doc["trackers"])
        if tracker not in trackers:
            return None
        index = trackers.index(tracker)
        values = {}
        for experiment, block in doc["results"].items():
            analyses = block["parameters"]["analyses"]
            for analysis, per_tracker in zip(analyses, block["results"]):
                kind = analysis["type"] if isinstance(analysis, dict) else str(analysis)
                values[(experiment, kind.rsplit(".", 1)[-1])] = per_tracker[index]
        return values
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ReportError(f"{source}: not a `vot analysis --format json` file ({type(exc).__name__}: {exc})") from None


def latest_vot_analysis(workspace: Path, tracker: str) -> tuple[Optional[Path], Optional[Dict[tuple, Any]]]:
    """The newest ``WS/analysis/*.json`` that holds ``tracker`` and its parsed values (None, None if none)."""
    files = sorted((workspace / "analysis").glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    for path in files:
        values = parse_vot_analysis(_read_json(path), tracker, str(path))
        if values is not None:
            return path, values
    return None, None


def workspace_stack(workspace: Path) -> tuple[str, Optional[tuple[int, int]]]:
    """The stack named in ``WS/config.yaml`` and, for a stack file, its baseline EAO interval."""
    config = workspace / "config.yaml"
    if not config.is_file():
        raise ReportError(f"{workspace} is not a VOT workspace (no config.yaml)")
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        stack = str(data.get("stack") or "")
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{config}: not a VOT workspace configuration ({exc})") from None
    if stack in STACK_BENCHMARKS:
        return stack, None
    stack_file = Path(stack) if Path(stack).is_absolute() else workspace / stack
    if not stack_file.is_file():
        return stack, None
    try:
        doc = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
        for analysis in doc["experiments"]["baseline"]["analyses"]:
            if str(analysis.get("type", "")).endswith("eao_score"):
                return stack, (int(analysis["low"]), int(analysis["high"]))
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{stack_file}: cannot read the baseline EAO interval ({exc})") from None
    return stack, None


def failure_rate(workspace: Path, tracker: str, experiment: str = "baseline") -> float:
    """Failures per 100 frames as in the VOT2016/2018 tables: per-sequence failures averaged over the counted
    repetitions, summed over sequences, divided by the total number of frames, times 100."""
    from d3s_vot.integrations.vot.legacy_eao import _sequences_dir, sequence_runs

    seq_root = _sequences_dir(workspace)
    names = [n.strip() for n in (seq_root / "list.txt").read_text().splitlines() if n.strip()]
    failures = frames = 0.0
    for name in names:
        runs = sequence_runs(workspace / "results" / tracker / experiment, seq_root / name)
        if runs:
            failures += sum(len(r.failures) for r in runs) / len(runs)
            frames += runs[0].overlaps.size
    return 100.0 * failures / frames if frames else float("nan")


def vot_section(workspace: str | Path, tracker: str) -> tuple[Optional[Section], List[str]]:
    """The VOT table of one workspace, or None and the reason when it has nothing for ``tracker``."""
    ws = Path(workspace)
    if not ws.is_dir():
        raise ReportError(f"VOT workspace {ws} does not exist")
    stack, interval = workspace_stack(ws)
    benchmark = STACK_BENCHMARKS.get(stack)
    prefix = benchmark.lower() if benchmark else None
    title = benchmark or f"VOT custom stack {stack}"
    notes: List[str] = []
    analysis_path, values = latest_vot_analysis(ws, tracker)
    has_results = (ws / "results" / tracker).is_dir()
    if values is None and not has_results:
        return None, [f"{title} ({ws}): no results and no analysis for {tracker} "
                      f"(run: vot evaluate --workspace {ws} {tracker})"]
    section = Section(f"{title}: {tracker}", str(ws))
    values = values or {}
    if analysis_path is None:
        notes.append(f"no `vot analysis` JSON for {tracker} in {ws / 'analysis'} (run: vot analysis --workspace "
                     f"{ws} --format json {tracker}); the toolkit's A, EAO and AO are left out")
    else:
        section.source += f"; analysis {analysis_path.name}"

    legacy = rate = None
    if has_results:
        from d3s_vot.integrations.vot.legacy_eao import LegacyEAOError, workspace_legacy_eao

        try:
            low, high = interval if interval else (None, None)
            stack_key = prefix if prefix in ("vot2016", "vot2018") else "vot2018"
            result = workspace_legacy_eao(ws, tracker, stack=stack_key, low=low, high=high)
            legacy = result.score
            rate = failure_rate(ws, tracker)
            notes.append(f"legacy EAO over sequence lengths {result.low}..{result.high}; "
                         f"{result.sequences} sequences, {result.runs} runs, {result.failures} failures")
        except (LegacyEAOError, OSError) as exc:
            notes.append(f"legacy EAO and failure rate not computed: {exc}")
    ar = values.get(("baseline", "AverageAccuracyRobustness"))
    eao = values.get(("baseline", "EAOScore"))
    rt_eao = values.get(("realtime", "EAOScore"))
    ao = values.get(("unsupervised", "AverageAccuracy"))

    def ref(name: str) -> Optional[str]:
        return f"{prefix}.{name}" if prefix else None

    section.rows.append(Row("EAO (legacy Matlab definition)", legacy, "fraction", ref("eao"),
                            "the definition of the published tables"))
    section.rows.append(Row("EAO (Python toolkit)", _finite(eao[0]) if eao else None, "fraction", None,
                            "other definition: not comparable with the paper (docs/vot.md)"))
    section.rows.append(Row("Accuracy A", _finite(ar[0]) if ar else None, "fraction", ref("accuracy"),
                            "Python toolkit (length-weighted)"))
    section.rows.append(Row("Robustness R (failures per 100 frames)", rate, "failures per 100 frames",
                            ref("robustness"), "computed from the results like the published tables"))
    section.rows.append(Row("Failures per sequence (Python toolkit R)", _finite(ar[1]) if ar else None, "count"))
    if rt_eao is not None:
        section.rows.append(Row("Realtime EAO (Python toolkit)", _finite(rt_eao[0]) if rt_eao else None,
                                "fraction", ref("realtime_eao")))
    if ao is not None:
        section.rows.append(Row("Unsupervised AO (Python toolkit)", _finite(ao[0]), "fraction"))
    fps = _vot_fps(ws, tracker, notes)
    section.rows.append(Row("FPS (baseline, tracked frames)", fps, "frames per second",
                            f"speed.{prefix}" if prefix else None,
                            "published speeds are GPU numbers" if prefix else ""))
    section.rows = [r for r in section.rows if r.ours is not None or r.ref]
    section.notes = notes
    return section, []


def _vot_fps(ws: Path, tracker: str, notes: List[str]) -> Optional[float]:
    from d3s_vot.integrations.vot.toolkit_fps import SpeedError, speed_report

    if not (ws / "results" / tracker).is_dir():
        return None
    try:
        speed = speed_report(ws, [tracker], with_hardware=False)["trackers"][tracker]
    except (SpeedError, OSError) as exc:
        notes.append(f"FPS not computed: {exc}")
        return None
    baseline = speed.get("baseline")
    return _finite(baseline["total"]["fps"]) if baseline else None


# --- GOT-10k and TrackingNet ---------------------------------------------------------------------------


def _got10k_file(path: Path, tracker: str) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise ReportError(f"GOT-10k report {path} does not exist")
    for candidate in (path / "performance.json", path / "GOT-10k" / tracker / "performance.json"):
        if candidate.is_file():
            return candidate
    found = sorted(path.glob("GOT-10k/*/performance.json"))
    if len(found) == 1:
        return found[0]
    raise ReportError(f"no performance.json in {path} (expected the GOT-10k toolkit's report folder "
                      "REPORT_DIR/GOT-10k/<tracker>, or the --json file of python -m d3s_vot.got10k_eval)")


def got10k_section(path: str | Path, tracker: str) -> Section:
    """GOT-10k AO/SR0.5/SR0.75 (as percent) and FPS from ``performance.json`` or the runner's JSON."""
    file = _got10k_file(Path(path), tracker)
    doc = _read_json(file)
    notes = ["the paper's numbers are GOT-10k test (evaluation server); local results are usually the val "
             "split, a different set of sequences: the deltas only show the order of magnitude"]
    try:
        if isinstance(doc, dict) and doc.get("benchmark") == "GOT-10k":
            name = str(doc["tracker"])
            split = str(doc.get("subset", "val"))
            if "ao" not in doc:
                raise ReportError(f"{file}: GOT-10k {split} results without metrics (the test split is scored "
                                  "by the server; upload the zip and compare by hand)")
            ao, sr50, sr75 = (_finite(doc[k]) for k in ("ao", "sr50", "sr75"))
            fps = _finite(doc.get("fps"))
            fps_note = "tracked frames / their total time (init excluded)"
        else:
            if not isinstance(doc, dict) or not doc:
                raise KeyError("no tracker entries")
            name = tracker if tracker in doc else (next(iter(doc)) if len(doc) == 1 else None)
            if name is None:
                raise ReportError(f"{file}: no results for tracker {tracker!r} (it has {', '.join(sorted(doc))}); "
                                  "pass --tracker NAME")
            overall = doc[name]["overall"]
            split = "val"
            ao, sr50 = _finite(overall["ao"]), _finite(overall["sr"])
            sr75 = _finite(overall["succ_curve"][75])
            fps = _finite(overall.get("speed_fps"))
            fps_note = "GOT-10k toolkit definition (mean of 1/t incl. init): optimistic"
    except ReportError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ReportError(f"{file}: not a GOT-10k performance.json or d3s_vot.got10k_eval JSON "
                          f"({type(exc).__name__}: {exc})") from None
    if name != tracker:
        notes.append(f"results of tracker {name!r}")
    pct = [None if v is None else 100.0 * v for v in (ao, sr50, sr75)]
    section = Section(f"GOT-10k {split} (local): {name}", str(file), notes=notes)
    section.rows = [Row("AO", pct[0], "percent", "got10k.ao"), Row("SR0.5", pct[1], "percent", "got10k.sr50"),
                    Row("SR0.75", pct[2], "percent", "got10k.sr75"),
                    Row("FPS", fps, "frames per second", "speed.got10k", fps_note)]
    return section


def trackingnet_section(path: str | Path) -> Section:
    """TrackingNet success/precision/normalised precision (devkit definitions, percent) and FPS."""
    file = Path(path)
    if not file.is_file():
        raise ReportError(f"TrackingNet results {file} do not exist")
    doc = _read_json(file)
    try:
        if doc.get("benchmark") != "TrackingNet":
            raise KeyError("benchmark")
        scores = doc["scores"]
        values = [_finite(scores[k]) for k in ("success", "precision", "norm_precision")]
        count = int(scores.get("sequences", 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{file}: not a TrackingNet scores JSON (write it with python -m d3s_vot.trackingnet_eval "
                          f"run|score ... --json FILE; missing {exc})") from None
    chunks = doc.get("scored_chunks") or doc.get("chunks") or []
    where = ", ".join(map(str, chunks)) if chunks else "local annotations"
    notes = [f"scored on {where} ({count} sequences) with the official devkit metrics; the paper's numbers are "
             "TrackingNet TEST (evaluation server)"]
    section = Section(f"TrackingNet ({where}): {doc.get('tracker', 'results ' + str(doc.get('results', '')))}",
                      str(file), notes=notes)
    section.rows = [Row("Success (AUC)", values[0], "percent", "trackingnet.success"),
                    Row("Precision", values[1], "percent", "trackingnet.precision"),
                    Row("Normalized precision", values[2], "percent", "trackingnet.norm_precision")]
    fps = _finite(doc.get("fps"))
    if fps is not None:
        section.rows.append(Row("FPS", fps, "frames per second", "speed.trackingnet",
                                "tracked frames / their total time (init excluded)"))
    return section


def davis_section(path: str | Path) -> Section:
    """DAVIS J&F, J mean and F mean (official definitions, percent) and FPS from the runner's scores JSON."""
    file = Path(path)
    if not file.is_file():
        raise ReportError(f"DAVIS scores {file} do not exist")
    doc = _read_json(file)
    try:
        year, split = str(doc["year"]), str(doc["split"])
        if year not in ("2016", "2017"):
            raise KeyError("year")
        scores = doc["overall"]
        values = [_finite(scores[k]) for k in ("J&F-Mean", "J-Mean", "F-Mean")]
        counts = int(doc["sequences"]), int(doc["objects"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReportError(f"{file}: not a DAVIS scores JSON (write it with python -m d3s_vot.davis_eval; "
                          f"missing {exc})") from None
    notes = [f"{counts[0]} sequences, {counts[1]} objects; frames scored as the official evaluation does (all but "
             "the first and the last); the paper's numbers are DAVIS val"]
    if split != "val":
        notes.append(f"local split {split!r}, not the paper's val split: the deltas only show the order of magnitude")
    section = Section(f"DAVIS {year} {split}: {doc.get('tracker', 'results')}", str(file), notes=notes)
    prefix = f"davis{year}"
    section.rows = [Row("J&F", _percent(values[0]), "percent", f"{prefix}.jf"),
                    Row("J mean", _percent(values[1]), "percent", f"{prefix}.j"),
                    Row("F mean", _percent(values[2]), "percent", f"{prefix}.f")]
    fps = _finite(doc.get("fps"))
    if fps is not None:
        section.rows.append(Row("FPS", fps, "frames per second", None,
                                "tracked frames / their total time, all objects of a frame together"))
    return section


def _percent(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100.0 * value


# --- assembling and rendering -------------------------------------------------------------------------


def build_report(vot_workspaces: Sequence[str | Path] = (), got10k: Optional[str | Path] = None,
                 trackingnet: Optional[str | Path] = None, tracker: str = "D3S",
                 references: Optional[Dict[str, ReferenceEntry]] = None,
                 davis: Sequence[str | Path] = ()) -> Report:
    report = Report(tracker, references=references if references is not None else load_references())
    for ws in vot_workspaces:
        section, omitted = vot_section(ws, tracker)
        if section is not None:
            report.sections.append(section)
        report.omitted.extend(omitted)
    if got10k is not None:
        report.sections.append(got10k_section(got10k, tracker))
    else:
        report.omitted.append("GOT-10k: no --got10k-report given")
    if trackingnet is not None:
        report.sections.append(trackingnet_section(trackingnet))
    else:
        report.omitted.append("TrackingNet: no --trackingnet-json given")
    if not vot_workspaces:
        report.omitted.append("VOT: no --vot-workspace given")
    for scores in davis:
        report.sections.append(davis_section(scores))
    if not davis:
        report.omitted.append("DAVIS: no --davis-json given")
    return report


def fmt(value: Optional[float], unit: str, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return MISSING
    digits = UNIT_DIGITS.get(unit, 3)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def table_cells(row: Row, references: Dict[str, ReferenceEntry]) -> List[str]:
    """metric | ours | paper | Δ paper | seed | Δ seed | note (unverified published values get a ``*``)."""
    entry = references.get(row.ref) if row.ref else None
    cells = [row.metric, fmt(row.ours, row.unit)]
    for ref in ((entry.paper, entry.seed) if entry else (None, None)):
        if ref is None or ref.value is None:
            cells += [MISSING, MISSING]
            continue
        mark = "" if ref.verified else "*"
        delta = None if row.ours is None else row.ours - ref.value
        cells += [fmt(ref.value, row.unit) + mark, fmt(delta, row.unit, signed=True)]
    return cells + [row.note]


HEADER = ["metric", "ours", "paper", "Δ paper", "seed repro", "Δ seed", "note"]


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(report: Report) -> str:
    lines = [f"# D3S reproduction report: {report.tracker}", "",
             "Ours: numbers computed from the result files named under each table. Paper: D3S, CVPR 2020 "
             "(arXiv:1911.08862). Seed repro: aerubanov/d3s_repro (re-trained D3S, Tesla V100). "
             "Δ = ours − published, in the metric's unit. Values marked * are not verified against an accessible "
             "source; sources per number: d3s_vot/data/paper_results.json; how the numbers vary: "
             "docs/reproduction.md.", ""]
    for section in report.sections:
        lines += [f"## {section.title}", "", f"Source: `{section.source}`", ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * 5 + ["---"]) + "|")
        for row in section.rows:
            lines.append("| " + " | ".join(_md_escape(c) for c in table_cells(row, report.references)) + " |")
        lines.append("")
        lines += [f"* {note}" for note in section.notes]
        if section.notes:
            lines.append("")
    if report.omitted:
        lines += ["## Not in this report", ""] + [f"* {item}" for item in report.omitted] + [""]
    lines += ["## Published numbers", "", "| benchmark | metric | paper | seed repro | paper source |",
              "|---|---|---:|---:|---|"]
    for entry in report.references.values():
        paper = fmt(entry.paper.value, entry.unit) + ("" if entry.paper.verified else "*")
        seed = fmt(entry.seed.value, entry.unit) + ("" if entry.seed.verified or entry.seed.value is None else "*")
        lines.append(f"| {entry.benchmark} | {entry.metric} | {paper} | {seed} | {_md_escape(entry.paper.source)} |")
    return "\n".join(lines) + "\n"


def render_html(report: Report) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
             f"<title>D3S reproduction report: {esc(report.tracker)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #bbb;padding:3px 8px}td.num{text-align:right;font-family:monospace}"
             "</style></head><body>",
             f"<h1>D3S reproduction report: {esc(report.tracker)}</h1>",
             "<p>Δ = ours − published. Values marked * are not verified against an accessible source "
             "(d3s_vot/data/paper_results.json). See docs/reproduction.md.</p>"]
    for section in report.sections:
        parts += [f"<h2>{esc(section.title)}</h2>", f"<p>Source: <code>{esc(section.source)}</code></p>",
                  "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in HEADER) + "</tr>"]
        for row in section.rows:
            cells = table_cells(row, report.references)
            parts.append("<tr>" + "".join(
                f"<td class=\"num\">{esc(c)}</td>" if 0 < i < len(cells) - 1 else f"<td>{esc(c)}</td>"
                for i, c in enumerate(cells)) + "</tr>")
        parts.append("</table>")
        if section.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in section.notes) + "</ul>")
    if report.omitted:
        parts += ["<h2>Not in this report</h2>", "<ul>" + "".join(f"<li>{esc(o)}</li>" for o in report.omitted)
                  + "</ul>"]
    parts += ["<h2>Published numbers</h2>", "<table><tr><th>benchmark</th><th>metric</th><th>paper</th>"
              "<th>seed repro</th><th>paper source</th></tr>"]
    for entry in report.references.values():
        paper = fmt(entry.paper.value, entry.unit) + ("" if entry.paper.verified else "*")
        seed = fmt(entry.seed.value, entry.unit)
        parts.append(f"<tr><td>{esc(entry.benchmark)}</td><td>{esc(entry.metric)}</td><td class=\"num\">{esc(paper)}"
                     f"</td><td class=\"num\">{esc(seed)}</td><td>{esc(entry.paper.source)}</td></tr>")
    parts += ["</table>", "</body></html>"]
    return "\n".join(parts) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = CliArgumentParser(prog="python -m d3s_vot.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vot-workspace", action="append", default=[], metavar="WS",
                        help="VOT workspace with results (repeatable: e.g. workspace_vot2016 and workspace_vot2018)")
    parser.add_argument("--got10k-report", metavar="PATH",
                        help="GOT-10k toolkit report folder or performance.json, or the --json file of "
                             "python -m d3s_vot.got10k_eval")
    parser.add_argument("--trackingnet-json", metavar="FILE",
                        help="--json file of python -m d3s_vot.trackingnet_eval run|score")
    parser.add_argument("--davis-json", action="append", default=[], metavar="FILE",
                        help="scores JSON of python -m d3s_vot.davis_eval (repeatable: DAVIS 2016 and 2017)")
    parser.add_argument("--tracker", default="D3S", help="tracker identifier in the results (default D3S)")
    parser.add_argument("--out", metavar="REPORT.md", help="also write the Markdown report to this file")
    parser.add_argument("--html", metavar="REPORT.html", help="also write an HTML report to this file")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_report, argv)


def _report(argv: Optional[List[str]]) -> int:
    args = build_parser().parse_args(argv)
    report = build_report(args.vot_workspace, args.got10k_report, args.trackingnet_json, args.tracker,
                          davis=args.davis_json)
    markdown = render_markdown(report)
    for target, text in ((args.out, markdown), (args.html, render_html(report) if args.html else None)):
        if target:
            try:
                atomic_write_text(target, text)
            except OSError as exc:
                raise ReportError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(markdown, end="")
    for target in (args.out, args.html):
        if target:
            print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
