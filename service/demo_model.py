"""The embedded demo model: a tiny Llama with seeded random weights, a byte-level BPE
tokenizer trained on a text shipped in this package, special tokens, and a ChatML chat
template. Deterministic, about 4 MB, built in seconds (`protoserve demo-model DIR`).

Its output is gibberish by construction: it exists to exercise every code path without
downloading anything."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

CORPUS = Path(__file__).parent / "data" / "demo_corpus.txt"
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

DEMO_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}


def train_tokenizer(vocab_size: int = 1024, special_tokens: list[str] | None = None) -> Tokenizer:
    """Byte-level BPE on the demo corpus; `special_tokens` (default: the chat model's) take
    the first ids."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS if special_tokens is None else special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(CORPUS)], trainer)
    return tokenizer


def llama_config(vocab_size: int, eos_ids: list[int], shape: dict[str, int]) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": vocab_size,
        **shape,
        "head_dim": shape["hidden_size"] // shape["num_attention_heads"],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,
        "eos_token_id": eos_ids,
        "torch_dtype": "float32",
    }


def random_weights(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """Seeded normal weights in a fixed order; norms at 1. Embeddings are wide enough
    that the output distribution is peaked (greedy choices are far from ties)."""
    generator = torch.Generator().manual_seed(seed)
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    head_dim = config["head_dim"]
    q_out = config["num_attention_heads"] * head_dim
    kv_out = config["num_key_value_heads"] * head_dim

    def normal(rows: int, cols: int, std: float) -> torch.Tensor:
        return torch.randn(rows, cols, generator=generator) * std

    weights = {"model.embed_tokens.weight": normal(config["vocab_size"], hidden, 1.0)}
    for i in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{i}."
        shapes = {
            "self_attn.q_proj": (q_out, hidden),
            "self_attn.k_proj": (kv_out, hidden),
            "self_attn.v_proj": (kv_out, hidden),
            "self_attn.o_proj": (hidden, q_out),
            "mlp.gate_proj": (inter, hidden),
            "mlp.up_proj": (inter, hidden),
            "mlp.down_proj": (hidden, inter),
        }
        for name, (rows, cols) in shapes.items():
            weights[f"{prefix}{name}.weight"] = normal(rows, cols, cols**-0.5)
        weights[f"{prefix}input_layernorm.weight"] = torch.ones(hidden)
        weights[f"{prefix}post_attention_layernorm.weight"] = torch.ones(hidden)
    weights["model.norm.weight"] = torch.ones(hidden)
    weights["lm_head.weight"] = normal(config["vocab_size"], hidden, 0.35)
    return weights


def build_demo_model(
    out_dir: str | Path, seed: int = 0, shape: dict[str, int] | None = None
) -> Path:
    """Write config, weights, tokenizer and chat template into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    tokenizer.save(str(out / "tokenizer.json"))
    eos_ids = [tokenizer.token_to_id(IM_END), tokenizer.token_to_id(ENDOFTEXT)]
    config = llama_config(tokenizer.get_vocab_size(), eos_ids, shape or DEMO_SHAPE)
    _write_json(out / "config.json", config)
    _write_json(out / "generation_config.json", {"eos_token_id": eos_ids})
    _write_json(out / "tokenizer_config.json", _tokenizer_config(config))
    save_file(
        random_weights(config, seed), str(out / "model.safetensors"), metadata={"format": "pt"}
    )
    return out


def _tokenizer_config(config: dict) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "bos_token": None,
        "unk_token": None,
        "model_max_length": config["max_position_embeddings"],
        "clean_up_tokenization_spaces": False,
        "chat_template": CHATML_TEMPLATE,
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
