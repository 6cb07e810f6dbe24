"""`perfsuite report` and `perfsuite export-asv`: a results file rendered, or written as asv's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._cli_shared import _error, _print


def _add_report_parsers(sub: Any) -> None:
    """`perfsuite report RESULTS.json` and `perfsuite export-asv RESULTS.json`."""
    rep = sub.add_parser(
        "report",
        help="render a results file as a table (or Markdown) with plots",
        description="Table per test (median, per unit, ratio with interval, verdict); "
        "PNG plots of scaling fits and per-step histograms next to the results.",
    )
    rep.add_argument("results", type=Path, metavar="RESULTS.json")
    rep.add_argument("--markdown", action="store_true", help="Markdown instead of text")
    rep.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the report here (atomically) instead of stdout",
    )
    rep.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    rep.add_argument(
        "--plots-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the PNGs go. Default: next to RESULTS.json",
    )

    exp = sub.add_parser(
        "export-asv",
        help="write perfsuite results as asv results",
        description="Write RESULTS.json as asv results (results/<machine>/machine.json and "
        "<commit[:8]>-<env>.json), so the measurements join the asv history.",
    )
    exp.add_argument("results", type=Path, metavar="RESULTS.json")
    exp.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="asv results dir. Default: results_dir of ./asv.conf.json, else .asv/results",
    )
    exp.add_argument(
        "--config",
        type=Path,
        default=Path("asv.conf.json"),
        metavar="PATH",
        help="asv.conf.json to read results_dir from. Default: %(default)s",
    )
    exp.add_argument(
        "--machine",
        default=None,
        metavar="NAME",
        help="asv machine name. Default: from the fingerprint",
    )
    exp.add_argument(
        "--env-name",
        default=None,
        metavar="NAME",
        help="asv environment name. Default: perfsuite-py<version>",
    )


def _report(args: argparse.Namespace) -> int:
    from . import _report as report
    from ._results import SchemaError, load_document, write_atomic

    try:
        doc = load_document(args.results)
    except SchemaError as exc:
        return _error(f"`RESULTS.json`: {exc}")
    plots: dict[str, list[Path]] = {}
    if not args.no_plots:
        from ._plots import write_plots

        folder = args.plots_dir or args.results.parent
        plots = write_plots(doc, folder, stem=args.results.stem)
    relative_to = (args.output or args.results).parent
    if args.markdown:
        text = report.markdown_report(doc, plots=plots, relative_to=relative_to)
    else:
        text = report.text_report(doc, plots=plots)
    if args.output is not None:
        write_atomic(args.output, text + "\n")
    else:
        _print(text)
    return 0


def _export_asv(args: argparse.Namespace) -> int:
    from ._asv_export import AsvExportError, export

    try:
        written = export(
            args.results,
            results_dir=args.results_dir,
            config=args.config,
            machine=args.machine,
            env_name=args.env_name,
        )
    except AsvExportError as exc:
        return _error(str(exc))
    for path in written:
        _print(f"perfsuite export-asv: wrote {path}")
    return 0
