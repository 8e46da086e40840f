"""MkDocs hook: fills `<!-- methods-table -->` with a table generated from the method registry, so
the methods page can never list a method the code does not have (or miss one it has),
`<!-- task-options-table -->` with each task's options generated from its `TaskConfig` class, and
`<!-- runs-table ... -->` with the runs columns generated from `RunRecord`."""

from __future__ import annotations

MARKER = "<!-- methods-table -->"
OPTIONS_MARKER = "<!-- options-table -->"
TASK_OPTIONS_MARKER = "<!-- task-options-table -->"
MODEL_OPTIONS_MARKER = "<!-- model-options-table -->"
RUNS_MARKER = "<!-- runs-table: generated from harness/store/record.py's RunRecord -->"


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
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, methods_table())
    if OPTIONS_MARKER in markdown:
        markdown = markdown.replace(OPTIONS_MARKER, options_table())
    if TASK_OPTIONS_MARKER in markdown:
        markdown = markdown.replace(TASK_OPTIONS_MARKER, task_options_tables())
    if MODEL_OPTIONS_MARKER in markdown:
        from harness.models.spec import ModelSpec

        markdown = markdown.replace(MODEL_OPTIONS_MARKER, typed_options_table(ModelSpec, "model"))
    if RUNS_MARKER in markdown:
        from harness.store.record import runs_columns_markdown

        markdown = markdown.replace(RUNS_MARKER, runs_columns_markdown())
    return markdown



def _field_docs(cls: type) -> dict[str, str]:
    """Each field's attribute docstring (the string right under it), read from the source."""
    import ast
    import inspect
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for field, doc in zip(body, body[1:]):
        if isinstance(field, ast.AnnAssign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
            docs[field.target.id] = " ".join(str(doc.value.value).split())
    return docs


def options_table() -> str:
    """The run's own options (harness/config/run_config.py), with their defaults from conf/config.yaml."""
    import dataclasses

    from omegaconf import OmegaConf

    from harness.config.run_config import GROUPS, RULES, RunConfig
    from harness.core.paths import CONF_DIR

    defaults = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"), resolve=False)  # `${seed}` shown as is
    allowed = {rule.option: rule.allowed() for rule in RULES}
    lines = ["| option | default | allowed | meaning |", "|:--|:--|:--|:--|"]
    for group, cls in [("", RunConfig), *GROUPS.items()]:
        docs = _field_docs(cls)
        for field in dataclasses.fields(cls):
            option = f"{group}.{field.name}" if group else field.name
            if option not in allowed:
                continue
            node = defaults
            for key in filter(None, group.split(".")):
                node = node.get(key, {})
            default = node.get(field.name)
            cells = [f"`{option}`", f"`{_yaml_text(default)}`", allowed[option], docs.get(field.name, "")]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def task_options_tables() -> str:
    """One table per task config class (the tasks it serves, then every option: allowed values and
    meaning, inherited ones included), generated from the registered tasks."""
    from harness import tasks

    served: dict[type, list[str]] = {}
    for name in tasks.names():
        served.setdefault(tasks.get(name).config_class, []).append(name)
    return "\n\n".join(f"**`{cls.__name__}`** ({', '.join(f'`{n}`' for n in names)})\n\n" + typed_options_table(cls, "task")
                       for cls, names in served.items())


def typed_options_table(cls: type, group: str) -> str:
    """Every field of a typed config (inherited ones included) as `group.<field>`: allowed values and meaning."""
    import dataclasses

    from harness.config.checks import rules_of

    allowed = {rule.option: rule.allowed() for rule in rules_of(cls, group)}
    docs = {k: v for base in reversed(cls.__mro__[:-1]) if dataclasses.is_dataclass(base) for k, v in _field_docs(base).items()}
    lines = ["| option | allowed | meaning |", "|:--|:--|:--|"]
    for field in dataclasses.fields(cls):
        option = f"{group}.{field.name}"
        cells = [f"`{option}`", allowed.get(option, "a mapping (see meaning)"), docs.get(field.name, "")]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _yaml_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(_yaml_text, value)) + "]"
    return str(value)
