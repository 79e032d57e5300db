"""Pooling inputs to token ids: truncation keeps the special tokens, pairs get token
types and per-side limits, input types map to prompts, pairing rules."""

from __future__ import annotations

import pytest

from engine.pooling import PoolingModelInfo
from protoserve.common.v1 import params_pb2
from protoserve.pooling.v1 import pooling_pb2
from service.chat import ChatRenderSettings
from service.errors import InvalidArgument
from service.pooling import input_type_prefix
from service.pooling_inputs import PoolingTokenizer, Truncation, encode_inputs, truncation_of
from service.scoring import pair_indices
from service.tokenizer import Tokenizer
from tests.pooling_models import minilm_dir

CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def tokenizer() -> PoolingTokenizer:
    return PoolingTokenizer(Tokenizer(str(minilm_dir())))


def test_plain_encoding_ignores_the_checkpoint_padding(tokenizer) -> None:
    # all-MiniLM-L6-v2's tokenizer.json pads and truncates to 128: not here.
    [ids] = tokenizer.encode_texts(["hello world"], True, Truncation(None))
    assert ids == [CLS, 7592, 2088, SEP]
    [long] = tokenizer.encode_texts(["word " * 200], True, Truncation(None))
    assert len(long) == 202


def test_truncation_keeps_special_tokens_on_either_side(tokenizer) -> None:
    text = "one two three four five"
    [first] = tokenizer.encode_texts([text], True, Truncation(4, keep_first=True))
    [last] = tokenizer.encode_texts([text], True, Truncation(4, keep_first=False))
    assert first[0] == last[0] == CLS and first[-1] == last[-1] == SEP
    assert len(first) == len(last) == 4 and first[1:3] != last[1:3]


def test_truncation_options() -> None:
    options = params_pb2.PromptOptions(truncate_prompt_tokens=-1)
    assert truncation_of(options, 256) == Truncation(256, True)
    options.truncation_side = params_pb2.TRUNCATION_SIDE_LEFT
    assert truncation_of(options, 256) == Truncation(256, False)
    with pytest.raises(InvalidArgument, match="greater than max_model_len"):
        truncation_of(params_pb2.PromptOptions(truncate_prompt_tokens=300), 256)


def test_pairs_have_token_types_and_per_side_limits(tokenizer) -> None:
    [(ids, types)] = tokenizer.encode_pairs(["a b c d"], ["e f g"], Truncation(None), 2, 1)
    assert ids[0] == CLS and ids.count(SEP) == 2 and len(ids) == 2 + 1 + 3
    assert types == [0, 0, 0, 0, 1, 1]
    [(ids, _)] = tokenizer.encode_pairs(["a b c d"], ["e f g h i"], Truncation(8))
    assert len(ids) == 8 and ids[:6] == [
        CLS,
        *tokenizer.encode_texts(["a b c d"], False, Truncation(None))[0],
        SEP,
    ]


def test_inputs_mix_texts_and_token_ids(tokenizer) -> None:
    inputs = [pooling_pb2.PoolingInput(text="hello"), pooling_pb2.PoolingInput()]
    inputs[1].token_ids.ids.extend([CLS, 5, SEP])
    ids = encode_inputs(inputs, pooling_pb2.PoolingOptions(), tokenizer,
                        ChatRenderSettings(None), 256)  # fmt: skip
    assert ids == [[CLS, 7592, SEP], [CLS, 5, SEP]]
    with pytest.raises(InvalidArgument, match="maximum context length is 2"):
        encode_inputs(inputs, pooling_pb2.PoolingOptions(), tokenizer, ChatRenderSettings(None), 2)


def test_conversations_render_without_a_generation_prompt(tokenizer) -> None:
    template = "{% for m in messages %}{{ m.role }}: {{ m.content }} {% endfor %}" + (
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    item = pooling_pb2.PoolingInput()
    item.conversation.messages.add(role="user", content="hello world")
    [ids] = encode_inputs([item], pooling_pb2.PoolingOptions(), tokenizer,
                          ChatRenderSettings(template), 256)  # fmt: skip
    assert ids == tokenizer.encode_texts(["user: hello world "], False, Truncation(None))[0]


def test_input_types_map_to_prompts() -> None:
    info = PoolingModelInfo("BertModel", frozenset({"embed"}), 8, 16, False, "MEAN", True,
                            prompts={"query": "query: ", "passage": "passage: "})  # fmt: skip
    assert input_type_prefix(info, "search_query") == "query: "
    assert input_type_prefix(info, "search_document") == "passage: "
    assert input_type_prefix(info, "") == ""
    with pytest.raises(InvalidArgument, match="Unsupported input_type"):
        input_type_prefix(info, "clustering")


def test_pairing_rules() -> None:
    assert pair_indices(1, 3) == [(0, 0), (0, 1), (0, 2)]
    assert pair_indices(2, 2) == [(0, 0), (1, 1)]
    with pytest.raises(InvalidArgument, match="1:1, 1:N or N:N"):
        pair_indices(2, 3)
    with pytest.raises(InvalidArgument, match="queries"):
        pair_indices(0, 3)
