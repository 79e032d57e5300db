"""Structured outputs in the engine: grammars compiled once per spec (cache), malformed
specs refused naming the field, the batched bitmask touching only constrained rows, and
a grammar that completes finishing its request."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from engine import CacheConfig, EngineConfig, LLMEngine, ModelConfig, SchedulerConfig
from engine.errors import InvalidParameter
from engine.sampler import Sampler
from engine.sampling_params import SamplingParams
from engine.scheduler import ScheduledSequence
from engine.structured import StructuredOutputSpec, TokenizerInfo
from engine.structured.compiler import GrammarCompiler
from tests.structural_tag import TAG, tagged_regions

VOCAB = 1024
EOS = 2


@pytest.fixture(scope="module")
def info(demo_model_dir: Path) -> TokenizerInfo:
    return TokenizerInfo((demo_model_dir / "tokenizer.json").read_text(), VOCAB, (EOS,))


@pytest.fixture(scope="module")
def tokenizer(demo_model_dir: Path) -> Tokenizer:
    return Tokenizer.from_file(str(demo_model_dir / "tokenizer.json"))


def test_compiled_grammars_are_cached_by_spec(info) -> None:
    compiler = GrammarCompiler(info)
    spec = StructuredOutputSpec("json", '{"type": "object"}')
    assert compiler.compile(spec) is compiler.compile(
        StructuredOutputSpec("json", '{"type": "object"}')
    )
    assert compiler.compile(spec) is not compiler.compile(
        StructuredOutputSpec("json", '{"type": "object"}', disable_any_whitespace=True)
    )
    gbnf = StructuredOutputSpec("grammar", 'root ::= "yes" | "no"')
    assert not compiler.compile(gbnf).is_error()


@pytest.mark.parametrize(
    "kind,value",
    [
        ("json", '{"type": "object"'),
        ("json", '{"type": "nonsense"}'),
        ("json", "[1, 2]"),
        ("json", "{" + '"a": {' * 70 + "}" * 71),
        ("regex", "(unclosed"),
        ("grammar", "start: missing_rule"),
        ("choice", "[]"),
        (
            "structural_tag",
            '{"structures": [{"begin": "<x>", "schema": {}, "end": ""}], "triggers": ["<y"]}',
        ),
    ],
)
def test_malformed_specs_name_their_field(info, kind, value) -> None:
    with pytest.raises(InvalidParameter) as error:
        GrammarCompiler(info).compile(StructuredOutputSpec(kind, value))
    assert error.value.field == f"structured_outputs.{kind}"


def _seq(rid: str, params: SamplingParams, output: list[int]) -> ScheduledSequence:
    return ScheduledSequence(rid, [1], 0, [0], True, params, len(output), (1,), output)


def test_bitmask_constrains_only_its_rows_until_the_grammar_completes(info, tokenizer) -> None:
    sampler = Sampler(VOCAB, (EOS,), torch.device("cpu"), seed=3)
    sampler.structured.set_tokenizer(info)
    constrained = SamplingParams(
        temperature=1.0, structured_output=StructuredOutputSpec("regex", "[0-9]{3}-(ab|cd)")
    )
    free = SamplingParams(temperature=0.0)
    sampler.add_request("c", constrained)
    sampler.add_request("f", free)
    g = torch.Generator().manual_seed(0)
    outputs: list[int] = []
    for _ in range(12):
        logits = torch.randn(2, VOCAB, generator=g)
        expected_free = int(logits[1].argmax())
        tokens = sampler.sample(
            logits.clone(), [_seq("c", constrained, outputs), _seq("f", free, [])]
        )
        assert tokens[1] == expected_free
        outputs.append(tokens[0])
        if sampler.grammar_finished("c"):
            break
    text = tokenizer.decode(outputs)
    assert sampler.grammar_finished("c") and re.fullmatch(r"[0-9]{3}-(ab|cd)", text), text
    sampler.remove_request("c")
    assert not sampler.structured.has("c")


def test_structural_tag_generation_constrains_each_tagged_region(
    demo_model_dir: Path, tokenizer: Tokenizer
) -> None:
    """The demo model writes free text; every "The" it writes opens a region that must
    be `The answer=<JSON of the schema></f>`."""
    engine = LLMEngine(
        EngineConfig(
            model=ModelConfig(str(demo_model_dir), max_model_len=256),
            cache=CacheConfig(block_size=16),
            scheduler=SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=1024),
            device="cpu",
        )
    )
    tokenizer_json = (demo_model_dir / "tokenizer.json").read_text()
    engine.set_tokenizer_info(
        TokenizerInfo(tokenizer_json, engine.vocab_size, engine.eos_token_ids)
    )
    spec = StructuredOutputSpec("structural_tag", json.dumps(TAG))
    for i in range(6):
        params = SamplingParams(temperature=1.0, seed=i, max_tokens=150, structured_output=spec)
        engine.add_request(f"r{i}", tokenizer.encode(f"Story {i}:").ids, params)
    generated: dict[str, list[int]] = {}
    while engine.has_unfinished_requests():
        for output in engine.step():
            generated.setdefault(output.request_id, []).extend(output.new_token_ids)
    regions = [tagged_regions(tokenizer.decode(ids)) for ids in generated.values()]
    assert sum(regions) >= 2, regions  # the regions were reached (and all valid)
    engine.check_no_leaks()
