"""The references page (`--reference NAME`): per reference, our runs next to the published numbers,
or the published claims tested on our runs, with their verdicts, as harness/report/reference.py
computes and formats them; its `reference_<NAME>.csv` (every row, `not run` ones too) is written
next to the page, with the markdown and plain HTML forms the command writes anyway."""

from __future__ import annotations

from harness.report.load import Results
from harness.report.reference import WrittenReference, write_references
from harness.report.site.html import Link, anchor, note, page, section, text
from harness.report.site.names import REFERENCES
from harness.report.site.output import SiteFolder
from harness.report.site.table import interactive_table

FILTERS = ("Method", "Compared", "Budget", "Verdict")


def _reference_section(index: int, reference: WrittenReference) -> str:
    csv = next(path for path in reference.files if path.suffix == ".csv")
    not_run = int((reference.table["verdict"] == "not run").sum())
    lines = [note(f"Verdicts: {text(reference.summary)}. " + anchor("CSV (every row)", csv.name)
                  + (f"; {not_run} published rows nothing here matched are only in the CSV." if not_run else "."))]
    if reference.text.empty:
        lines.append(note("No run of these results matches any of its rows."))
    else:
        lines.append(interactive_table(f"reference-{index}", reference.text, filters=FILTERS))
    return section(reference.name, *lines)


def references_page(results: Results, names: list[str], confidence: float, nav: list[Link],
                    site: SiteFolder) -> list[WrittenReference]:
    try:
        written = write_references(results, site.root, names, confidence)
    except OSError as exc:
        raise site.error(exc) from None
    for reference in written:
        site.files += reference.files
    lead = ("Published numbers next to ours (verdict: <em>within noise</em> when the difference lies within the noise band "
            "of both, else <em>above</em> or <em>below</em>), and published claims tested on our runs (<em>holds</em>, "
            "<em>inconclusive</em>, <em>contradicted</em>); docs/reports.md and references/README.md say how.")
    body = "\n".join(_reference_section(i, reference) for i, reference in enumerate(written))
    site.write_text(REFERENCES, page("References", body, nav, lead=lead))
    return written
