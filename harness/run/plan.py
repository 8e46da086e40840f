"""`RunPlan`: what a run's preparation decides before anything heavy, kept apart from the config.

A few options are settled by looking at the run as a whole: the base dtype `auto` becomes the one
the device supports, the strategy `auto` the one the world of processes needs, an encoder run sizes
its head and turns off what needs a language-model head (harness/models/encoder_rules.py), and a
parameter budget chooses the method's size knob (harness/budget/param_budget.py). Each decision is
one change of a dotted option. The run reads the config with its plan applied, and that resolved
config is what the run records (config_json) and what its run id is computed from, so a decision is
never a silent difference between two runs. The composed config itself is never written to.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class RunPlan:
    """Changes to the composed config, by dotted option ("model.dtype": "fp32"), in decision order."""

    changes: dict[str, Any] = field(default_factory=dict)

    def decide(self, option: str, value: Any) -> None:
        self.changes[option] = value

    def decide_all(self, changes: Mapping[str, Any]) -> None:
        self.changes.update(changes)

    def applied(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the plain config with every change made (an option it lacks is added)."""
        resolved = copy.deepcopy(dict(config))
        for option, value in self.changes.items():
            *parents, leaf = option.split(".")
            node = resolved
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = copy.deepcopy(value)
        return resolved
