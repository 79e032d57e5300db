"""The floor of a decode step: the model's linear layers alone at a given number of tokens
(the checkpoint's own weights, `torch.nn.functional.linear` calls in a loop, no attention,
no norms, no sampling). A decode step can hardly beat this; the ratio of the engine's step
to it says how much the rest (attention, batching, Python) costs. The engine variant
runs every weight the way the engine does on this device (oneDNN-packed on a float32 CPU),
so that ratio leaves the engine's faster matmuls out of the margin."""

from __future__ import annotations

import re
import time
from functools import partial
from pathlib import Path

_LINEAR = re.compile(r"model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.weight$")
_ORDER = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linear_weights(model_dir: Path, dtype, device) -> list:
    """Every linear weight of the checkpoint in forward order, then the LM head (the
    embedding when tied)."""
    from safetensors import safe_open

    tensors: dict[str, object] = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                if _LINEAR.match(name) or name in ("lm_head.weight", "model.embed_tokens.weight"):
                    tensors[name] = handle.get_tensor(name).to(device=device, dtype=dtype)
    layers = sorted(
        (int(m.group(1)), _ORDER.index(m.group(3)), name)
        for name in tensors
        if (m := _LINEAR.match(name))
    )
    head = tensors.get("lm_head.weight", tensors["model.embed_tokens.weight"])
    return [tensors[name] for _, _, name in layers] + [head]


class LinearPass:
    """One timed pass over every weight at `num_tokens` rows: `F.linear` on each, the LM head
    too; or (`as_engine`) each weight the way the engine computes it on this device: packed
    for oneDNN on a float32 CPU (engine.models.packed_linear), else `F.linear` with the LM
    head in vocabulary slices (engine.models.layers.sliced_linear)."""

    def __init__(self, weights: list, num_tokens: int, as_engine: bool = False) -> None:
        import torch
        import torch.nn.functional as F

        from engine.models.layers import sliced_linear
        from engine.models.packed_linear import PackedLinear, can_pack

        first = weights[0]
        self.device = first.device
        inputs = {
            w.shape[1]: torch.randn(num_tokens, w.shape[1], dtype=first.dtype, device=first.device)
            for w in weights
        }
        self.inputs = [inputs[w.shape[1]] for w in weights]
        *body, head = weights
        if as_engine and can_pack(first.dtype, first.device):
            self.layers = [PackedLinear(w, None) for w in weights]
        elif as_engine:
            self.layers = [partial(F.linear, weight=w) for w in body]
            self.layers.append(partial(sliced_linear, weight=head))
        else:
            self.layers = [partial(F.linear, weight=w) for w in weights]

    def __call__(self) -> float:
        """Seconds of one pass."""
        import torch

        begin = time.perf_counter()
        with torch.inference_mode():
            for layer, x in zip(self.layers, self.inputs, strict=True):
                layer(x)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        return time.perf_counter() - begin
