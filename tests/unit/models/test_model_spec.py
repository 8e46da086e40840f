"""The base model's typed spec (harness/models/spec.py): every model yaml builds, and a model node
that cannot load is refused in one line before anything loads."""

from __future__ import annotations

import pytest
import yaml

from harness.core.errors import HarnessError
from harness.core.paths import CONF_DIR
from harness.models.spec import CAUSAL, ENCODER, ModelSpec

YAMLS = sorted((CONF_DIR / "model").glob("*.yaml"))
HUB = {"name": "m", "source": "hub", "hub_id": "org/m", "dtype": "auto", "load_in_8bit": False}


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_every_model_yaml_is_a_valid_spec(path):
    node = yaml.safe_load(path.read_text())
    spec = ModelSpec.of({**node, "load_in_8bit": False})
    assert spec.name == path.stem and spec.source == node["source"]
    assert spec.model_kind == node.get("kind", CAUSAL)


@pytest.mark.parametrize("change, message", [
    ({"source": "ftp"}, "model.source='ftp' is invalid: it must be one of hub, gguf_package, package, random_init"),
    ({"dtype": "int4"}, "model.dtype='int4' is invalid: it must be one of auto, bf16, fp16, fp32"),
    ({"kind": "decoder"}, "model.kind='decoder' is invalid: it must be one of causal, encoder, or null"),
    ({"load_in_8bit": "yes"}, "model.load_in_8bit='yes' is invalid: it must be true or false"),
    ({"num_labels": 0}, "model.num_labels=0 is invalid: it must be an integer >= 1, or null"),
    ({"hub_id": None}, "model 'm' (source hub) needs model.hub_id; set it in conf/model/m.yaml"),
    ({"gguf_file": "m.gguf"}, "model.gguf_file has no meaning for source hub (model 'm'); drop it"),
    ({"revison": "main"}, "model.revison is not an option of a model; its options are: architecture, config, dtype"),
    ({"source": "random_init", "hub_id": None, "architecture": "llama", "tokenizer_from": "smollm2-135m"},
     "model 'm' (source random_init) needs model.config"),
])
def test_a_model_node_that_cannot_load_is_one_line_naming_the_option(change, message):
    with pytest.raises(HarnessError) as refused:
        ModelSpec.of({**HUB, **change})
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_a_spec_passes_through_and_an_encoder_is_not_causal():
    spec = ModelSpec.of({**HUB, "kind": ENCODER, "num_labels": 3})
    assert ModelSpec.of(spec) is spec and spec.model_kind == ENCODER and spec.revision is None
