from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

from service.demo_model import CORPUS
from service.detokenizer import IncrementalDetokenizer
from service.tokenizer import Tokenizer


def test_streamed_text_equals_full_decode_with_split_utf8(demo_model_dir) -> None:
    tokenizer = Tokenizer(str(demo_model_dir))
    prompt = tokenizer.encode("The lighthouse keeper")
    model = AutoModelForCausalLM.from_pretrained(demo_model_dir)
    out = model.generate(torch.tensor([prompt]), max_new_tokens=60, do_sample=False)
    generated = out[0, len(prompt) :].tolist()
    detokenizer = IncrementalDetokenizer(tokenizer, prompt, skip_special_tokens=True)
    streamed = "".join(detokenizer.add([t]) for t in generated)
    assert streamed == tokenizer.decode(generated, skip_special_tokens=True)


def test_multibyte_characters_are_held_until_complete(demo_model_dir) -> None:
    tokenizer = Tokenizer(str(demo_model_dir))
    ids = tokenizer.encode("naïve café ✓")
    detokenizer = IncrementalDetokenizer(tokenizer, [], skip_special_tokens=True)
    pieces = [detokenizer.add([t]) for t in ids]
    assert "".join(pieces) == "naïve café ✓"
    assert all("\ufffd" not in p for p in pieces)


def test_special_tokens_kept_and_their_spacing(demo_model_dir) -> None:
    tokenizer = Tokenizer(str(demo_model_dir))
    ids = tokenizer.encode("hello") + [2, 1] + tokenizer.encode(" world")
    for spaces in (True, False):
        detokenizer = IncrementalDetokenizer(tokenizer, [], False, spaces)
        text = "".join(detokenizer.add([t]) for t in ids)
        # A byte-level decoder puts no space before added tokens either way.
        assert text == "hello<|im_end|><|im_start|> world"


@pytest.fixture(scope="module")
def wordpiece_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT-style tokenizer (WordPiece decoder: tokens joined with spaces) with two
    added special tokens."""
    backend = BackendTokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()
    specials = ["[UNK]", "[SEP]", "<a>", "<b>"]
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=specials, show_progress=False
    )
    backend.train([str(CORPUS)], trainer)
    out = tmp_path_factory.mktemp("wordpiece")
    PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", eos_token="[SEP]",
        additional_special_tokens=["<a>", "<b>"],
    ).save_pretrained(out)  # fmt: skip
    return out


def test_spaces_between_special_tokens_off_joins_adjacent_added_tokens(wordpiece_dir) -> None:
    tokenizer = Tokenizer(str(wordpiece_dir))
    a, b = (tokenizer.encode(t, add_special_tokens=False)[0] for t in ("<a>", "<b>"))
    ids = tokenizer.encode("hello", add_special_tokens=False) + [a, b, a]
    ids += tokenizer.encode("world", add_special_tokens=False)

    def streamed(spaces: bool) -> str:
        detokenizer = IncrementalDetokenizer(tokenizer, [], False, spaces)
        return "".join(detokenizer.add([t]) for t in ids)

    assert streamed(True) == tokenizer.decode(ids) == "hello <a> <b> <a> world"
    # vLLM: an added token right after another comes without the decoder's space.
    assert streamed(False) == "hello <a><b><a> world"
