"""`python -m harness.report RESULTS_DIR [--out DIR] [--metric NAME] [--confidence 0.95] [--reference NAME] [--site OUT]
[--only KEY=VALUES]`: write the leaderboards, paired comparisons and figures of a results folder,
headless; with `--reference NAME` also our runs next to the published numbers of
`references/NAME.csv`; with `--site OUT` an interactive site (OUT/index.html, opens from disk)
instead, or as well with `--out`; with `--only budget=steps100` (model, task, method alike) of
those runs alone.

Unreadable or missing part files are named on stderr (`warning: ...`) and the rest is reported;
nothing to report is a one-line `error: ...` with exit status 2.
"""

from __future__ import annotations

import argparse
import sys


PRINTED_ROWS = 40  # leaderboard rows on the console; the files hold every row


def _confidence(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a confidence level; use a number between 0 and 1, e.g. 0.95")
    return value


def _selection(texts: list[str]) -> dict[str, list[str]]:
    """`--only KEY=V1,V2` (repeated) as {KEY: [V1, V2]}; a KEY given twice takes the values of both."""
    from harness.core.errors import HarnessError
    from harness.report.load import SELECTABLE

    only: dict[str, list[str]] = {}
    for text in texts:
        key, sep, values = text.partition("=")
        picked = [v for v in values.split(",") if v]
        if not sep or key not in SELECTABLE or not picked:
            raise HarnessError(f"--only {text}: write KEY=VALUE[,VALUE...] with KEY one of {', '.join(SELECTABLE)}, "
                               "e.g. --only budget=steps100")
        only[key] = [*only.get(key, []), *picked]
    return only


def main(argv: list[str] | None = None) -> int:
    import matplotlib

    matplotlib.use("Agg")  # headless: never open a window or need a display
    from harness.core.errors import HarnessError
    from harness.report.build import slug, write_report
    from harness.report.reference import available, load_reference, write_references
    from harness.report.tables import markdown

    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", help="the results_dir a sweep wrote to (holds runs/ and metrics/)")
    parser.add_argument("--out", help="output folder (default: RESULTS_DIR/report)")
    parser.add_argument("--metric", help="headline metric of the leaderboards (default: exact_match_flexible where measured)")
    parser.add_argument("--confidence", type=_confidence, default=0.95, help="confidence level of every interval (default: 0.95)")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME",
                        help=f"also compare with published numbers (repeatable): {', '.join(available())}")
    parser.add_argument("--site", metavar="OUT", help="write the interactive site to OUT (open OUT/index.html, no server "
                        "or network needed) instead of the markdown report; with --out, both")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUES",
                        help="report only the runs whose KEY (task, model, budget or method) is one of VALUES, "
                        "comma-separated (repeatable: every KEY must match), e.g. --only budget=steps100")
    args = parser.parse_args(argv)
    written = site = None
    try:
        only = _selection(args.only)
        for name in args.reference:
            load_reference(name)  # a bad reference fails before anything is written
        if args.site is not None:
            from harness.report.site.build import write_site  # plotly and the method registry: only for the site

            site = write_site(args.results_dir, args.site, args.metric, args.confidence, args.reference, only)
            references = site.references
        if args.site is None or args.out is not None:
            written = write_report(args.results_dir, args.out, args.metric, args.confidence, only)
            references = write_references(written.results, args.out, args.reference, args.confidence)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = written or site
    for problem in shown.problems:
        print(f"warning: {problem}", file=sys.stderr)
    for report in shown.tasks:
        board = report.leaderboard_text()
        if len(board) <= PRINTED_ROWS:
            print(f"== {report.task}: leaderboard\n{report.leaderboard_markdown}\n")
        else:  # thousands of configurations: the best ones here, all of them in the file
            full = written.out_dir / (slug(report.task) + "_leaderboard.md") if written else site.leaderboard(report.task)
            print(f"== {report.task}: leaderboard, best {PRINTED_ROWS} of {len(board)} (all in "
                  f"{full})\n{markdown(board.head(PRINTED_ROWS))}\n")
    for ref in references:
        print(f"== reference {ref.name}: {ref.summary}\n{markdown(ref.text)}\n")
    if written:
        files = len(written.files) + sum(len(ref.files) for ref in references)
        print(f"wrote {files} files to {written.out_dir} (start with {written.out_dir / 'index.md'})")
    if site:
        print(f"wrote {len(site.files)} files to {site.out_dir} (open {site.index} in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
