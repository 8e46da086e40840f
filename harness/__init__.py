"""PEFT benchmark harness: train, evaluate and cost PEFT methods under matched budgets.

The main path of a run: `__main__` -> `cli.app` (after `cli.preflight` checked every job) ->
`run.prepare` -> `run.experiment` (set up, fit with `train.loop`, evaluate) -> `store`. The other subpackages serve it by role; docs/layout.md
has one line per subpackage.
"""

__version__ = "0.1.0"
