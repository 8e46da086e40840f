"""MkDocs hook: fills `<!-- methods-table -->` with a table generated from the method registry, so
the methods page can never list a method the code does not have (or miss one it has)."""

from __future__ import annotations

MARKER = "<!-- methods-table -->"


def methods_table() -> str:
    from methods.__main__ import rows

    lines = ["| method | family | backend | mergeable | paper |", "|:--|:--|:--|:--|:--|"]
    for row in rows():
        lines.append(f"| `{row['method']}` | {row['family']} | {row['backend']} | "
                     f"{'yes' if row['mergeable'] else 'no'} | {row['paper']} |")
    listing = rows()
    native = sum(r["backend"] == "native" for r in listing)
    lines.append("")
    lines.append(f"{len(listing)} methods: {len(listing) - native} delegate to PEFT, {native} are implemented here.")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return markdown.replace(MARKER, methods_table()) if MARKER in markdown else markdown
