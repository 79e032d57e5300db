"""Server-side sampling defaults: the model's generation_config.json (as vLLM reads it),
`--generation-config vllm` (none) or a folder holding one, with
`--override-generation-config` merged over it. A request's own value always wins."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

NEUTRAL = "vllm"  # --generation-config vllm: vLLM's neutral defaults only
AUTO = "auto"
# generation_config.json fields that become defaults (max_new_tokens -> max_tokens).
FIELDS = (
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "max_new_tokens",
    "skip_special_tokens",
)


@dataclass(frozen=True)
class SamplingDefaults:
    """None = no server default (the neutral one applies)."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    max_tokens: int | None = None  # a cap: min(request or RPC default, this, context)
    skip_special_tokens: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }


def load_defaults(
    model_dir: str, source: str = AUTO, overrides: dict[str, Any] | None = None
) -> SamplingDefaults:
    """source: "auto" (the model's own file), "vllm" (none) or a folder path."""
    if source == NEUTRAL:
        config: dict[str, Any] = {}
    else:
        folder = Path(model_dir if source == AUTO else source)
        if source != AUTO and not folder.is_dir():
            raise ValueError(f"--generation-config {source}: not 'auto', 'vllm' or a folder")
        config = _read(folder / "generation_config.json")
    config = {**config, **(overrides or {})}
    picked = {k: config[k] for k in FIELDS if config.get(k) is not None}
    if "max_new_tokens" in picked:
        picked["max_tokens"] = picked.pop("max_new_tokens")
    defaults = SamplingDefaults(**picked)
    if picked:
        log.info("sampling defaults from the generation config", **defaults.as_dict())
    return defaults


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}
