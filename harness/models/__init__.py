"""Base models: loading them and their tokenizers, the hub check, encoder classification heads and encoder rules."""
