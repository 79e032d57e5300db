from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

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
