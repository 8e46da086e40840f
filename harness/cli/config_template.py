"""A job's resolved config from its composition's resolved config, without resolving it again.

Resolving a composed config (`OmegaConf.resolve`) costs about 2 ms per job. For a sweep whose jobs
share a composition and differ in plain values (`seed=3`, `train.lr=1e-4`) the result is known
without it. Let B be the composed config, V a job's value overrides. When
  1. every interpolation in B either references one option by its absolute path (`${seed}`) or reads
     only the environment (`${oc.env:X,default}`, `${oc.decode:${oc.env:X,1}}`, none of whose
     variables holds a `$`), and
  2. every override in V changes an existing plain value (an untyped leaf under dicts, no `+`, `++`
     or `~`) to a plain value that is no interpolation (an int, float, bool, None, or a string
     without `$` that is not `???`),
then resolve(apply(B, V)) equals apply(resolve(B), V) with each reference that leads, directly or
through other references, to an overridden option set to that option's new value: applying a plain
value sets the same leaf node the same way before or after resolving, an environment read does not
depend on the config, and a reference resolves to its target's value. A reference to a dict that
holds an overridden option (or into one), or one that lives in a list, makes a job fall back to
resolving. `Template.plan` decides this once per distinct list of overridden options.
"""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import AnyNode, DictConfig, OmegaConf

IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\}")  # the whole string: `${train.lr}`
ENVIRONMENT_CALL = re.compile(r"\$\{oc\.(?:env|decode):[^${}\\]*\}")  # innermost, literal arguments only
ENVIRONMENT_NAME = re.compile(r"\$\{oc\.env:([^,}]*)")
PLAIN_TYPES = (int, float, bool, str, type(None))

Plan = tuple[tuple[str, str], ...]  # (reference, its target): re-pointed in this order


class Template:
    """The interpolations of one composed (unresolved) config, and the plans of its jobs."""

    def __init__(self, composed: DictConfig):
        self._composed = composed
        self.references: dict[str, str] = {}  # option path -> the option path it references
        self.usable = self._scan(OmegaConf.to_container(composed, resolve=False), "")
        self._plans: dict[tuple, Plan | None] = {}

    def _scan(self, node: Any, path: str) -> bool:
        """Condition 1 of the module docstring, recording the references; paths are dotted names."""
        if isinstance(node, dict):
            return all(isinstance(k, str) and IDENTIFIER.fullmatch(k) and self._scan(v, f"{path}.{k}" if path else k)
                       for k, v in node.items())
        if isinstance(node, list):
            return all(self._scan(v, f"{path}[{i}]") for i, v in enumerate(node))
        if not isinstance(node, str) or "$" not in node:
            return True
        if match := REFERENCE.fullmatch(node):
            self.references[path] = match.group(1)
            return True
        return _reads_environment_only(node)

    def plan(self, overrides: Sequence[Override]) -> Plan | None:
        """The references to re-point for a job with these value overrides, or None when the job
        must be resolved (condition 2 of the module docstring fails, or a reference cannot be re-pointed)."""
        if not self.usable or not all(_plain_value(o.value()) for o in overrides):
            return None
        signature = tuple((o.key_or_group, o.type) for o in overrides)
        if signature not in self._plans:
            self._plans[signature] = self._plan(signature)
        return self._plans[signature]

    def _plan(self, signature: tuple) -> Plan | None:
        keys = [key for key, _ in signature]
        if any(kind != OverrideType.CHANGE or not self._plain_leaf(key) for key, kind in signature):
            return None
        changed, plan = set(keys), []
        while True:  # references to a changed option change too, transitively
            found = [(path, target) for path, target in self.references.items() if target in changed and path not in changed]
            if not found:
                break
            for path, target in found:
                plan.append((path, target))
                changed.add(path)
        for path, target in self.references.items():
            if path in changed and "[" in path:
                return None  # inside a list: not re-pointed here
            if target not in changed and any(_nested(target, c) for c in changed):
                return None  # references a dict holding a changed option, or into a changed option
        return tuple(plan)

    def _plain_leaf(self, key: str) -> bool:
        node: Any = self._composed
        for part in key.split("."):
            if not isinstance(node, DictConfig) or not IDENTIFIER.fullmatch(part) or part not in node:
                return False  # a missing option: applying the override fails, as Hydra's does
            node = node._get_node(part)
        return type(node) is AnyNode


def _nested(a: str, b: str) -> bool:
    """One path lies strictly inside the other."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def _plain_value(value: Any) -> bool:
    return type(value) in PLAIN_TYPES and not (isinstance(value, str) and ("$" in value or value == "???"))


def _reads_environment_only(text: str) -> bool:
    """`${oc.env:...}` and `${oc.decode:...}` calls with literal arguments, nested in any way, and no
    other interpolation; the variables read hold no interpolation themselves."""
    if any("$" in os.environ.get(name.strip(), "") for name in ENVIRONMENT_NAME.findall(text)):
        return False
    while (reduced := ENVIRONMENT_CALL.sub("x", text)) != text:
        text = reduced
    return "$" not in text
