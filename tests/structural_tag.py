"""A structural tag (vLLM's format: free text; each trigger starts a tagged region whose
body must match its schema) and a checker of outputs generated under it, shared by the
engine and e2e tests. On the demo model "The" comes up often in free text."""

from __future__ import annotations

import json

import jsonschema

BEGIN, END, TRIGGER = "The answer=", "</f>", "The"
SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 999}},
    "required": ["n"],
    "additionalProperties": False,
}
TAG = {"structures": [{"begin": BEGIN, "schema": SCHEMA, "end": END}], "triggers": [TRIGGER]}
WHITESPACE = " \t\n\r"


def tagged_regions(text: str, complete: bool = False) -> int:
    """The number of complete regions in `text`; AssertionError when a trigger is not
    followed by BEGIN, a body valid against SCHEMA and END. A region cut by the end of the
    text (max_tokens) is allowed unless `complete`."""
    count, position = 0, text.find(TRIGGER)
    while position != -1:
        rest = text[position:]
        if len(rest) < len(BEGIN) and not complete:
            assert BEGIN.startswith(rest), text
            return count
        assert rest.startswith(BEGIN), text
        body = rest[len(BEGIN) :].lstrip(WHITESPACE)
        try:
            value, end = json.JSONDecoder().raw_decode(body)
        except json.JSONDecodeError:
            assert not complete, text
            return count  # cut inside the body
        jsonschema.validate(value, SCHEMA)
        tail = body[end:].lstrip(WHITESPACE)
        if not tail.startswith(END):
            assert not complete and END.startswith(tail), text
            return count
        count += 1
        after = len(text) - len(tail) + len(END)
        position = text.find(TRIGGER, after)
    return count
