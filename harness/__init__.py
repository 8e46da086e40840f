"""PEFT benchmark harness: train, evaluate and cost PEFT methods under matched budgets."""

__version__ = "0.1.0"
