"""Random-init models of real architectures: the config's shapes, the real vocabulary size."""

from __future__ import annotations

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.models.loading import load_model, random_init_config


def _tiny(**config) -> dict:
    cfg = yaml.safe_load((CONF_DIR / "model" / "tiny-random-llama.yaml").read_text())
    cfg["config"].update(config)
    return cfg


def test_config_vocab_size_sets_the_embedding_rows_beyond_the_tokenizer():
    loaded = load_model(_tiny(vocab_size=60_000), CONF_DIR)
    assert len(loaded.tokenizer) == 49_152
    assert loaded.model.get_input_embeddings().weight.shape[0] == 60_000
    assert loaded.model.config.vocab_size == 60_000


def test_vocab_size_below_the_tokenizer_is_refused():
    with pytest.raises(HarnessError, match="vocab_size=1000 is below the 49152 tokens"):
        load_model(_tiny(vocab_size=1000), CONF_DIR)


# Published sizes: Qwen2.5-0.5B 494,032,768 parameters (0.49B, tied embeddings); Llama-3.2-1B 1.24B.
@pytest.mark.parametrize("name, n_params", [("qwen2.5-0.5b-random", 494_032_768), ("llama-3.2-1b-random", 1_235_814_400)])
def test_real_architecture_configs_have_the_real_parameter_count(name, n_params, tiny_model):
    cfg = yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())
    with torch.device("meta"):  # shapes only: no memory, no init time
        model = AutoModelForCausalLM.from_config(random_init_config(cfg, tiny_model().tokenizer))
    assert sum(p.numel() for p in model.parameters()) == n_params
