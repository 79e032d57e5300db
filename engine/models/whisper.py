"""Native Whisper (WhisperForConditionalGeneration checkpoints): an audio encoder run once
per 30 s window, and a text decoder whose self-attention goes through the paged backend
and whose cross-attention reads per-request encoder K/V (engine/encoder_cache.py).

Module names mirror Hugging Face's, so `load_weights` only strips the `model.` prefix
(`proj_out` is tied to the decoder's token embedding). Decoding constraints (suppressed
tokens, timestamp rules, language detection) live in `whisper_decoding.py`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.attention.base import AttentionBackend, AttentionMetadata, KVCache
from engine.errors import InvalidParameter, UnsupportedModel
from engine.models import whisper_decoding
from engine.models.layers import sliced_linear
from engine.models.whisper_decoding import DecodeRow


@dataclass(frozen=True)
class WhisperArgs:
    vocab_size: int
    d_model: int
    num_mel_bins: int
    encoder_layers: int
    encoder_heads: int
    encoder_ffn: int
    decoder_layers: int
    decoder_heads: int
    decoder_ffn: int
    max_source_positions: int  # encoder positions (frames / 2)
    max_target_positions: int  # decoder positions (the context length)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WhisperArgs:
        if config.get("activation_function", "gelu") != "gelu" or config.get("scale_embedding"):
            raise UnsupportedModel("Whisper: only gelu and unscaled embeddings are supported")
        return cls(
            vocab_size=config["vocab_size"],
            d_model=config["d_model"],
            num_mel_bins=config.get("num_mel_bins", 80),
            encoder_layers=config["encoder_layers"],
            encoder_heads=config["encoder_attention_heads"],
            encoder_ffn=config["encoder_ffn_dim"],
            decoder_layers=config["decoder_layers"],
            decoder_heads=config["decoder_attention_heads"],
            decoder_ffn=config["decoder_ffn_dim"],
            max_source_positions=config.get("max_source_positions", 1500),
            max_target_positions=config.get("max_target_positions", 448),
        )


@dataclass(frozen=True)
class CrossAttentionMetadata:
    """Which encoder K/V each row of the step attends to. K/V tensors are laid out
    [..., layer, 2 (k, v), heads, source_positions, head_dim]."""

    decode_rows: torch.Tensor  # [D] rows of the single-token sequences
    decode_kv: torch.Tensor | None  # [D, L, 2, H, S, Dh], stacked in decode_rows order
    prefills: list[tuple[int, int, torch.Tensor]]  # (first row, rows, kv [L, 2, H, S, Dh])


class WhisperAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d_model // heads
        self.scale = self.head_dim**-0.5
        self.q_proj = nn.Linear(d_model, d_model, dtype=dtype)
        self.k_proj = nn.Linear(d_model, d_model, bias=False, dtype=dtype)
        self.v_proj = nn.Linear(d_model, d_model, dtype=dtype)
        self.out_proj = nn.Linear(d_model, d_model, dtype=dtype)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], self.heads, self.head_dim)

    def encoder_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bidirectional attention over whole windows: x [B, S, d] -> [B, S, d]."""
        q, k, v = (
            self._heads(p(x)).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def paged_forward(
        self,
        x: torch.Tensor,
        backend: AttentionBackend,
        kv_cache: KVCache,
        metadata: AttentionMetadata,
    ) -> torch.Tensor:
        """Causal decoder self-attention through the paged KV cache: x [T, d]."""
        q, k, v = (self._heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        out = backend.forward(q, k, v, kv_cache, metadata, scale=self.scale)
        return self.out_proj(out.flatten(1))

    def cross_kv(self, encoded: torch.Tensor) -> torch.Tensor:
        """encoded [B, S, d] -> [B, 2, H, S, Dh]."""
        k = self._heads(self.k_proj(encoded)).transpose(1, 2)
        v = self._heads(self.v_proj(encoded)).transpose(1, 2)
        return torch.stack((k, v), dim=1)

    def cross_forward(
        self, x: torch.Tensor, layer: int, cross: CrossAttentionMetadata
    ) -> torch.Tensor:
        """Attention of the rows x [T, d] over their request's encoder K/V."""
        q = self._heads(self.q_proj(x))  # [T, H, Dh]
        out = torch.empty_like(q)
        if cross.decode_kv is not None:
            rows = cross.decode_rows
            kv = cross.decode_kv[:, layer]  # [D, 2, H, S, Dh]
            attended = F.scaled_dot_product_attention(
                q[rows].unsqueeze(2), kv[:, 0], kv[:, 1], scale=self.scale
            )
            out[rows] = attended.squeeze(2)
        for start, count, kv in cross.prefills:
            rows_q = q[start : start + count].transpose(0, 1).unsqueeze(0)  # [1, H, Q, Dh]
            k, v = kv[layer, 0].unsqueeze(0), kv[layer, 1].unsqueeze(0)
            attended = F.scaled_dot_product_attention(rows_q, k, v, scale=self.scale)
            out[start : start + count] = attended.squeeze(0).transpose(0, 1)
        return self.out_proj(out.flatten(1))


class WhisperMLP(nn.Module):
    def __init__(self, d_model: int, ffn: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn, dtype=dtype)
        self.fc2 = nn.Linear(ffn, d_model, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _norm(d_model: int, dtype: torch.dtype) -> nn.LayerNorm:
    return nn.LayerNorm(d_model, dtype=dtype)


class WhisperEncoderLayer(nn.Module):
    def __init__(self, args: WhisperArgs, dtype: torch.dtype) -> None:
        super().__init__()
        self.self_attn = WhisperAttention(args.d_model, args.encoder_heads, dtype)
        self.self_attn_layer_norm = _norm(args.d_model, dtype)
        self.mlp = WhisperMLP(args.d_model, args.encoder_ffn, dtype)
        self.final_layer_norm = _norm(args.d_model, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn.encoder_forward(self.self_attn_layer_norm(x))
        return x + self.mlp(self.final_layer_norm(x))


class WhisperDecoderLayer(nn.Module):
    def __init__(self, args: WhisperArgs, dtype: torch.dtype) -> None:
        super().__init__()
        self.self_attn = WhisperAttention(args.d_model, args.decoder_heads, dtype)
        self.self_attn_layer_norm = _norm(args.d_model, dtype)
        self.encoder_attn = WhisperAttention(args.d_model, args.decoder_heads, dtype)
        self.encoder_attn_layer_norm = _norm(args.d_model, dtype)
        self.mlp = WhisperMLP(args.d_model, args.decoder_ffn, dtype)
        self.final_layer_norm = _norm(args.d_model, dtype)


class WhisperEncoder(nn.Module):
    def __init__(self, args: WhisperArgs, dtype: torch.dtype) -> None:
        super().__init__()
        d = args.d_model
        self.conv1 = nn.Conv1d(args.num_mel_bins, d, kernel_size=3, padding=1, dtype=dtype)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1, dtype=dtype)
        self.embed_positions = nn.Embedding(args.max_source_positions, d, dtype=dtype)
        self.layers = nn.ModuleList(
            WhisperEncoderLayer(args, dtype) for _ in range(args.encoder_layers)
        )
        self.layer_norm = _norm(d, dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, n_mels, frames] -> hidden states [B, frames / 2, d]."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(features)))).transpose(1, 2)
        x = x + self.embed_positions.weight
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


class WhisperDecoder(nn.Module):
    def __init__(self, args: WhisperArgs, dtype: torch.dtype) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.d_model, dtype=dtype)
        self.embed_positions = nn.Embedding(args.max_target_positions, args.d_model, dtype=dtype)
        self.layers = nn.ModuleList(
            WhisperDecoderLayer(args, dtype) for _ in range(args.decoder_layers)
        )
        self.layer_norm = _norm(args.d_model, dtype)


class WhisperForConditionalGeneration(nn.Module):
    is_encoder_decoder = True

    def __init__(
        self, config: dict[str, Any], backend: AttentionBackend, dtype: torch.dtype
    ) -> None:
        super().__init__()
        args = self.args = WhisperArgs.from_config(config)
        self.encoder = WhisperEncoder(args, dtype)
        self.decoder = WhisperDecoder(args, dtype)
        self.backend = backend
        self.tied_head = None  # see engine.models.packed_linear
        # What the engine sizes the KV cache (decoder self-attention) and validates with:
        self.num_layers = args.decoder_layers
        self.num_kv_heads = args.decoder_heads
        self.head_dim = args.d_model // args.decoder_heads
        self.vocab_size = args.vocab_size
        self.max_position_embeddings = args.max_target_positions
        self.num_encoder_frames = 2 * args.max_source_positions  # conv2 halves the frames

    # -- the encoder ---------------------------------------------------------------------
    def check_encoder_input(self, features: Any) -> None:
        """Log-mel features [n_mels, frames] of one 30 s window (the service pads)."""
        expected = (self.args.num_mel_bins, self.num_encoder_frames)
        if not isinstance(features, torch.Tensor) or tuple(features.shape) != expected:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
            raise InvalidParameter(
                "audio", f"Whisper expects log-mel features of shape {expected}, got {shape}"
            )

    def dummy_features(self) -> torch.Tensor:
        """A silent window (memory profiling)."""
        return torch.zeros(self.args.num_mel_bins, self.num_encoder_frames)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, n_mels, frames] -> every decoder layer's cross-attention K/V,
        [B, L, 2, H, S, Dh]: computed once per window, kept for the request's lifetime."""
        encoded = self.encoder(features)
        layers = [layer.encoder_attn.cross_kv(encoded) for layer in self.decoder.layers]
        return torch.stack(layers, dim=1)

    # -- the decoder ---------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        metadata: AttentionMetadata,
        kv_caches: list[KVCache],
        cross: CrossAttentionMetadata,
    ) -> torch.Tensor:
        """input_ids, positions [T] -> hidden states [T, d] (final norm applied)."""
        decoder = self.decoder
        x = decoder.embed_tokens(input_ids) + decoder.embed_positions(positions)
        for index, (layer, kv_cache) in enumerate(zip(decoder.layers, kv_caches, strict=True)):
            attn = layer.self_attn
            x = x + attn.paged_forward(
                layer.self_attn_layer_norm(x), self.backend, kv_cache, metadata
            )
            x = x + layer.encoder_attn.cross_forward(layer.encoder_attn_layer_norm(x), index, cross)
            x = x + layer.mlp(layer.final_layer_norm(x))
        return decoder.layer_norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, d] -> logits [N, vocab] (proj_out is tied to the token embedding)."""
        if self.tied_head is not None:
            return self.tied_head(hidden)
        return sliced_linear(hidden, self.tied_head_weight())

    def tied_head_weight(self) -> torch.Tensor:
        return self.decoder.embed_tokens.weight

    def constrain_logits(self, logits: torch.Tensor, rows: list[DecodeRow | None]) -> None:
        """Whisper's decoding rules for the sampling rows, in place (whisper_decoding)."""
        whisper_decoding.apply(logits, rows)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Copy Hugging Face tensors into our parameters; returns the loaded names."""
        params = dict(self.named_parameters())
        loaded: set[str] = set()
        for hf_name, tensor in weights:
            name = _our_name(hf_name)
            if name is None:
                continue
            if name not in params:
                raise ValueError(f"unexpected checkpoint tensor {hf_name}")
            if params[name].shape != tensor.shape:
                raise ValueError(
                    f"{hf_name}: checkpoint shape {tuple(tensor.shape)} != "
                    f"{tuple(params[name].shape)}"
                )
            params[name].data.copy_(tensor)
            loaded.add(name)
        return loaded


def _our_name(hf_name: str) -> str | None:
    """HF name -> ours (fc1/fc2 live under `mlp.`); None for the tied output projection."""
    if hf_name.startswith("proj_out."):
        return None
    name = hf_name.removeprefix("model.")
    for fc in (".fc1.", ".fc2."):
        name = name.replace(fc, f".mlp{fc}")
    return name
