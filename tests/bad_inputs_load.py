"""Loading cases: model folders with corrupt, truncated, pickled or mis-shaped files; devices."""

from __future__ import annotations

import json
import os
import shutil

from bad_input_corpus import Env, Outcome, case, expect_error
from bad_input_fixtures import SHIPPED, load, model_copy, pickle_bomb


# --------------------------------------------------------------------------- API: loading

@case("load")
def load_missing_folder(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    return expect_error(env, load(env.tmp / "nowhere"), CheckpointError, "nowhere", "neither a preset")


@case("load")
def load_config_json_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "config.json").write_text('{"model_type": "videoglamm", ')
    return expect_error(env, load(path), CheckpointError, "config.json", "not valid JSON")


@case("load")
def load_config_json_not_an_object(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "config.json").write_text("[1, 2, 3]\n")
    return expect_error(env, load(path), CheckpointError, "config.json", "object")


@case("load")
def load_config_unknown_top_level_field(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["mask_treshold"] = 0.3
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), ConfigError, "mask_treshold", "config.json")


@case("load")
def load_config_unknown_section_field(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["inference"]["max_tokens"] = 10
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), ConfigError, "max_tokens", "inference")


@case("load")
def load_config_wrong_type(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["adapter"]["trainable"] = "yes"
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), ConfigError, "adapter.trainable", "true or false")


@case("load")
def load_weights_truncated(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    return expect_error(env, load(path), CheckpointError, "model.safetensors")


@case("load")
def load_weights_garbage(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "model.safetensors").write_bytes(os.urandom(4096))
    return expect_error(env, load(path), CheckpointError, "model.safetensors")


@case("load")
def load_weights_empty_file(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "model.safetensors").write_bytes(b"")
    return expect_error(env, load(path), CheckpointError, "model.safetensors")


@case("load")
def load_weights_pickle_is_refused(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    marker = env.tmp / "PICKLE_RAN"
    pickle_bomb(path / "model.safetensors", marker)
    outcome = expect_error(env, load(path), CheckpointError, "model.safetensors", "safetensors")
    return Outcome("silent-wrong", "the pickle was executed") if marker.exists() else outcome


@case("load")
def load_llm_weights_pickle_is_refused(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    marker = env.tmp / "PICKLE_RAN"
    (path / "llm" / "model.safetensors").unlink()
    pickle_bomb(path / "llm" / "pytorch_model.bin", marker)
    outcome = expect_error(env, load(path), CheckpointError, "llm")
    return Outcome("silent-wrong", "the pickle was executed") if marker.exists() else outcome


@case("load")
def load_weights_wrong_shape(env: Env) -> Outcome:
    from safetensors.torch import load_file, save_file

    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    state = load_file(path / "model.safetensors")
    name = sorted(k for k, v in state.items() if v.ndim == 2)[0]
    state[name] = state[name][:, :-1].contiguous()
    save_file(state, path / "model.safetensors")
    return expect_error(env, load(path), CheckpointError, name, "shape")


@case("load")
def load_weights_missing_key(env: Env) -> Outcome:
    from safetensors.torch import load_file, save_file

    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    state = load_file(path / "model.safetensors")
    name = sorted(state)[0]
    del state[name]
    save_file(state, path / "model.safetensors")
    return expect_error(env, load(path), CheckpointError, name, "missing")


@case("load")
def load_llm_weights_truncated(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    llm = path / "llm" / "model.safetensors"
    llm.write_bytes(llm.read_bytes()[:1000])
    return expect_error(env, load(path), CheckpointError, "llm")


@case("load")
def load_llm_config_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "llm" / "config.json").write_text("{not json")
    return expect_error(env, load(path), CheckpointError, "llm", "config.json")


@case("load")
def load_llm_wrong_shape(env: Env) -> Outcome:
    from safetensors.torch import load_file, save_file

    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    state = load_file(path / "llm" / "model.safetensors")
    name = "model.embed_tokens.weight"
    state[name] = state[name][:-3].contiguous()
    save_file(state, path / "llm" / "model.safetensors", metadata={"format": "pt"})
    return expect_error(env, load(path), CheckpointError, "embed_tokens", "shape")


@case("load")
def load_tokenizer_missing(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "tokenizer.json").unlink()
    return expect_error(env, load(path), CheckpointError, "tokenizer")


@case("load")
def load_tokenizer_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    (path / "tokenizer.json").write_text("{")
    return expect_error(env, load(path), CheckpointError, "tokenizer.json")


@case("load")
def load_wrong_model_type(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    path = model_copy(env)
    raw = json.loads((path / "config.json").read_text())
    raw["model_type"] = "llava"
    (path / "config.json").write_text(json.dumps(raw))
    return expect_error(env, load(path), CheckpointError, "llava")


@case("load")
def load_device_cuda_without_gpu(env: Env) -> Outcome:
    import torch

    from videoglamm.errors import InputError
    if torch.cuda.is_available():
        return Outcome("handled", "a GPU is present: nothing to refuse")
    return expect_error(env, load(SHIPPED, device="cuda"), InputError, "cuda", "--device cpu")


@case("load")
def load_device_unknown(env: Env) -> Outcome:
    from videoglamm.errors import InputError
    return expect_error(env, load(SHIPPED, device="gpu0"), InputError, "gpu0", "device")


@case("load")
def load_bad_quantization(env: Env) -> Outcome:
    from videoglamm.errors import ConfigError
    return expect_error(env, load(SHIPPED, quantization="3bit"), ConfigError, "3bit", "quantization")


@case("load")
def load_adapter_missing(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    return expect_error(env, load(SHIPPED, adapter=env.tmp / "no_adapter"), CheckpointError, "adapter")


@case("load")
def load_samwise_truncated(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    from videoglamm.samwise.model import SAMWISE

    if "samwise_dir" not in env.cache:
        folder = env.tmp.parent / "samwise_tiny_saved"
        SAMWISE.from_pretrained("samwise-tiny").save_pretrained(folder)
        env.cache["samwise_dir"] = folder
    path = env.tmp / "sw"
    shutil.copytree(env.cache["samwise_dir"], path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:5000])
    return expect_error(env, lambda: SAMWISE.from_pretrained(path), CheckpointError, "model.safetensors")


@case("load")
def load_samwise_config_malformed(env: Env) -> Outcome:
    from videoglamm.errors import CheckpointError
    from videoglamm.samwise.model import SAMWISE

    path = env.tmp / "sw"
    path.mkdir()
    (path / "config.json").write_text("{{")
    return expect_error(env, lambda: SAMWISE.from_pretrained(path), CheckpointError, "config.json", "JSON")
