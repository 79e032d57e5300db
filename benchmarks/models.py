"""The benchmark models, built locally (no model hub): Llama layout, seeded random weights,
float32 safetensors, config.json, generation_config.json, and a byte-level BPE covering the
whole vocabulary (tokenizer.json + tokenizer_config.json with a ChatML chat template).

  tiny   hidden 256, 4 layers, 4 heads (2 KV), intermediate 768, vocab 8k   (~6M params)
  small  hidden 768, 12 layers, 12 heads (4 KV), intermediate 2048, vocab 32k, tied
         embeddings (~100M params)

Built models are cached under a directory (default benchmarks/.models/, git-ignored) and
rebuilt only when missing or when their recipe changed (recorded in bench_model.json)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from service.demo_model import CHATML_TEMPLATE, ENDOFTEXT, IM_END, llama_config, random_weights

DEFAULT_ROOT = Path(__file__).parent / ".models"
RECIPE_FILE = "bench_model.json"
RECIPE_VERSION = 1


@dataclass(frozen=True)
class ModelRecipe:
    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int = 2048
    seed: int = 0
    version: int = RECIPE_VERSION

    @property
    def shape(self) -> dict[str, int]:
        return {
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "max_position_embeddings": self.max_position_embeddings,
        }


MODELS: dict[str, ModelRecipe] = {
    "tiny": ModelRecipe("tiny", 256, 4, 4, 2, 768, 8192, tie_word_embeddings=False),
    "small": ModelRecipe("small", 768, 12, 12, 4, 2048, 32000, tie_word_embeddings=True),
}


def resolve_model(spec: str, root: str | Path | None = None) -> Path:
    """A model name from MODELS (built into `root` if needed) or a model directory."""
    if spec in MODELS:
        return ensure_model(spec, root)
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise SystemExit(f"{spec}: neither a benchmark model ({', '.join(MODELS)}) nor a model dir")
    return path


def ensure_model(name: str, root: str | Path | None = None) -> Path:
    """The model's directory under `root`, built first when missing or stale."""
    recipe = MODELS[name]
    out = Path(root or DEFAULT_ROOT) / name
    if _recorded_recipe(out) == asdict(recipe):
        return out
    return build_model(recipe, out)


def build_model(recipe: ModelRecipe, out: Path) -> Path:
    """Build into a sibling temp dir, then swap it in (an interrupted build leaves no
    half-written model behind)."""
    from benchmarks.tokenizer import train_tokenizer

    staging = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tokenizer = train_tokenizer(recipe.vocab_size, seed=recipe.seed)
    tokenizer.save(str(staging / "tokenizer.json"))
    eos_ids = [tokenizer.token_to_id(IM_END), tokenizer.token_to_id(ENDOFTEXT)]
    config = model_config(recipe, eos_ids)
    _write_json(staging / "config.json", config)
    _write_json(staging / "generation_config.json", {"eos_token_id": eos_ids})
    _write_json(staging / "tokenizer_config.json", tokenizer_config(recipe))
    _save_weights(recipe, config, staging / "model.safetensors")
    _write_json(staging / RECIPE_FILE, asdict(recipe))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return out


def model_config(recipe: ModelRecipe, eos_ids: list[int]) -> dict:
    config = llama_config(recipe.vocab_size, eos_ids, recipe.shape)
    config["tie_word_embeddings"] = recipe.tie_word_embeddings
    return config


def tokenizer_config(recipe: ModelRecipe) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "bos_token": None,
        "unk_token": None,
        "model_max_length": recipe.max_position_embeddings,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML_TEMPLATE,
    }


def count_parameters(recipe: ModelRecipe) -> int:
    hidden, inter, layers = recipe.hidden_size, recipe.intermediate_size, recipe.num_hidden_layers
    head_dim = hidden // recipe.num_attention_heads
    q_out, kv_out = recipe.num_attention_heads * head_dim, recipe.num_key_value_heads * head_dim
    per_layer = 2 * hidden * q_out + 2 * hidden * kv_out + 3 * hidden * inter + 2 * hidden
    embeddings = recipe.vocab_size * hidden * (1 if recipe.tie_word_embeddings else 2)
    return embeddings + layers * per_layer + hidden


def _save_weights(recipe: ModelRecipe, config: dict, path: Path) -> None:
    from safetensors.torch import save_file

    weights = random_weights(config, recipe.seed)
    if recipe.tie_word_embeddings:
        del weights["lm_head.weight"]
    save_file(weights, str(path), metadata={"format": "pt"})


def _recorded_recipe(out: Path) -> dict | None:
    try:
        return json.loads((out / RECIPE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
