"""The embedded speech demo model: a tiny Whisper with seeded random weights, a byte-level
BPE tokenizer trained on the demo corpus followed by Whisper's special tokens (in Whisper's
order: <|endoftext|>, <|startoftranscript|>, 100 languages, <|translate|>,
<|transcribe|>, <|startoflm|>, <|startofprev|>, <|nocaptions|>, <|notimestamps|>, 1501
timestamps), the feature extractor's config, and a generation_config.json with every id
transformers' Whisper `generate` needs. Deterministic, built in seconds
(`protoserve demo-model --kind whisper DIR`).

It transcribes any audio into well-formed gibberish. The weights are shaped so that the
output is readable in length: token embeddings wide enough for peaked distributions,
timestamp embeddings narrower (text wins most steps), and a positional direction shared
with EOS so that a window's text ends after a few dozen tokens."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken

from service.demo_model import train_tokenizer

ENDOFTEXT = "<|endoftext|>"
TASKS = ("<|translate|>", "<|transcribe|>")
AFTER_TASKS = ("<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")
NUM_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> by 0.02 s
# Symbols Whisper never emits as a token of their own (a subset of its suppress list).
SUPPRESSED_SYMBOLS = '"#()*+/:;<=>@[\\]^_`{|}~'

WHISPER_SHAPE = {
    "d_model": 64,
    "encoder_layers": 2,
    "encoder_attention_heads": 4,
    "encoder_ffn_dim": 256,
    "decoder_layers": 2,
    "decoder_attention_heads": 4,
    "decoder_ffn_dim": 256,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
}
# Output length: EOS and late positions share a direction (see _shape_eos).
EOS_RAMP_START, EOS_RAMP_SLOPE, EOS_WEIGHT = 24, 0.25, 3.0
SPECIAL_SCALE = 0.4


def whisper_languages() -> list[str]:
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return list(LANGUAGES)


def special_tokens() -> list[str]:
    languages = [f"<|{code}|>" for code in whisper_languages()]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(NUM_TIMESTAMPS)]
    return [ENDOFTEXT, "<|startoftranscript|>", *languages, *TASKS, *AFTER_TASKS, *stamps]


def build_tokenizer():
    """The demo BPE (no specials) with Whisper's special tokens appended after it."""
    tokenizer = train_tokenizer(special_tokens=[])
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in special_tokens()])
    return tokenizer


def generation_config(tokenizer) -> dict:
    ids = tokenizer.token_to_id
    symbols = [ids(c) for c in SUPPRESSED_SYMBOLS if ids(c) is not None]
    eot = ids(ENDOFTEXT)
    return {
        "decoder_start_token_id": ids("<|startoftranscript|>"),
        "eos_token_id": eot,
        "bos_token_id": eot,
        "pad_token_id": eot,
        "max_length": WHISPER_SHAPE["max_target_positions"],
        "begin_suppress_tokens": [ids("\u0120"), eot],  # byte-level " " and EOS
        "suppress_tokens": sorted(symbols) + [ids(t) for t in (*TASKS, *AFTER_TASKS[:3])],
        "no_timestamps_token_id": ids("<|notimestamps|>"),
        "prev_sot_token_id": ids("<|startofprev|>"),
        "lang_to_id": {f"<|{c}|>": ids(f"<|{c}|>") for c in whisper_languages()},
        "task_to_id": {"translate": ids(TASKS[0]), "transcribe": ids(TASKS[1])},
        "is_multilingual": True,
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
    }


def whisper_config(vocab_size: int, gen: dict, shape: dict) -> dict:
    from transformers import WhisperConfig

    config = WhisperConfig(
        vocab_size=vocab_size,
        **shape,
        decoder_start_token_id=gen["decoder_start_token_id"],
        eos_token_id=gen["eos_token_id"],
        bos_token_id=gen["eos_token_id"],
        pad_token_id=gen["eos_token_id"],
        begin_suppress_tokens=gen["begin_suppress_tokens"],
        suppress_tokens=gen["suppress_tokens"],
        tie_word_embeddings=True,
    ).to_dict()
    config["architectures"] = ["WhisperForConditionalGeneration"]
    config["torch_dtype"] = "float32"
    return config


def random_weights(config: dict, gen: dict, seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights under Hugging Face's names, in a fixed order."""
    g = torch.Generator().manual_seed(seed)
    d, vocab = config["d_model"], config["vocab_size"]

    def normal(*shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std

    weights: dict[str, torch.Tensor] = {}

    def linear(name: str, rows: int, cols: int, bias: bool = True) -> None:
        weights[f"{name}.weight"] = normal(rows, cols, std=cols**-0.5)
        if bias:
            weights[f"{name}.bias"] = normal(rows, std=0.02)

    def norm(name: str) -> None:
        weights[f"{name}.weight"], weights[f"{name}.bias"] = torch.ones(d), torch.zeros(d)

    def attention(name: str) -> None:
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(f"{name}.{proj}", d, d, bias=proj != "k_proj")

    def layer(prefix: str, ffn: int, cross: bool) -> None:
        attention(f"{prefix}.self_attn")
        norm(f"{prefix}.self_attn_layer_norm")
        if cross:
            attention(f"{prefix}.encoder_attn")
            norm(f"{prefix}.encoder_attn_layer_norm")
        linear(f"{prefix}.fc1", ffn, d)
        linear(f"{prefix}.fc2", d, ffn)
        norm(f"{prefix}.final_layer_norm")

    mels = config["num_mel_bins"]
    weights["model.encoder.conv1.weight"] = normal(d, mels, 3, std=(3 * mels) ** -0.5)
    weights["model.encoder.conv1.bias"] = normal(d, std=0.02)
    weights["model.encoder.conv2.weight"] = normal(d, d, 3, std=(3 * d) ** -0.5)
    weights["model.encoder.conv2.bias"] = normal(d, std=0.02)
    weights["model.encoder.embed_positions.weight"] = sinusoids(config["max_source_positions"], d)
    for i in range(config["encoder_layers"]):
        layer(f"model.encoder.layers.{i}", config["encoder_ffn_dim"], cross=False)
    norm("model.encoder.layer_norm")
    tokens = normal(vocab, d, std=1.0)
    tokens[gen["eos_token_id"] :] *= SPECIAL_SCALE  # specials and timestamps: rarer
    weights["model.decoder.embed_tokens.weight"] = tokens
    positions = normal(config["max_target_positions"], d, std=0.5)
    weights["model.decoder.embed_positions.weight"] = positions
    for i in range(config["decoder_layers"]):
        layer(f"model.decoder.layers.{i}", config["decoder_ffn_dim"], cross=True)
    norm("model.decoder.layer_norm")
    # Random signs: with tied embeddings, the input token no longer predicts itself.
    signs = torch.randint(0, 2, (d,), generator=g) * 2 - 1
    weights["model.decoder.layer_norm.weight"] = signs.float()
    _shape_eos(weights, gen["eos_token_id"], normal(d, std=1.0), signs.float())
    return weights


def _shape_eos(
    weights: dict[str, torch.Tensor], eos: int, direction: torch.Tensor, signs: torch.Tensor
) -> None:
    """Late decoder positions lean along EOS's embedding (seen through the final norm's
    signs): text ends after a while."""
    direction = direction / direction.norm()
    positions = weights["model.decoder.embed_positions.weight"]
    ramp = (torch.arange(positions.shape[0]) - EOS_RAMP_START).clamp_min(0) * EOS_RAMP_SLOPE
    positions += ramp.unsqueeze(1) * direction
    scale = EOS_WEIGHT * math.sqrt(positions.shape[1])
    weights["model.decoder.embed_tokens.weight"][eos] = scale * signs * direction


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> torch.Tensor:
    """Whisper's fixed encoder positions."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-increment * torch.arange(channels // 2))
    scaled = torch.arange(length).view(-1, 1) * inv_timescales.view(1, -1)
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


def build_whisper_model(
    out_dir: str | Path, seed: int = 0, shape: dict[str, int] | None = None
) -> Path:
    """Write config, weights, tokenizer, feature extractor and generation config."""
    from transformers import WhisperFeatureExtractor

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save(str(out / "tokenizer.json"))
    gen = generation_config(tokenizer)
    config = whisper_config(tokenizer.get_vocab_size(), gen, {**WHISPER_SHAPE, **(shape or {})})
    _write_json(out / "config.json", config)
    _write_json(out / "generation_config.json", gen)
    _write_json(out / "tokenizer_config.json", _tokenizer_config(config))
    features = WhisperFeatureExtractor(feature_size=config["num_mel_bins"])
    features.save_pretrained(str(out))
    weights = random_weights(config, gen, seed)
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def _tokenizer_config(config: dict) -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": ENDOFTEXT,
        "eos_token": ENDOFTEXT,
        "unk_token": ENDOFTEXT,
        "pad_token": ENDOFTEXT,
        "model_max_length": config["max_target_positions"],
        "clean_up_tokenization_spaces": False,
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
