"""Model outputs as the models write them (recorded from their documented formats), with
what a parser must make of them: (output, expected content, expected calls as
(name, arguments object)). Content None: no content."""

from __future__ import annotations

HERMES = [
    # Qwen2.5-7B-Instruct, one call.
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "San Francisco", '
        '"unit": "fahrenheit"}}\n</tool_call>',
        None,
        [("get_weather", {"city": "San Francisco", "unit": "fahrenheit"})],
    ),
    # Qwen2.5, parallel calls.
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"timezone": "Asia/Tokyo"}}\n'
        "</tool_call>",
        None,
        [("get_weather", {"city": "Tokyo"}), ("get_time", {"timezone": "Asia/Tokyo"})],
    ),
    # Hermes-2-Pro: arguments before the name, text before the call.
    (
        "Let me look that up.\n<tool_call>\n"
        '{"arguments": {"symbol": "TSLA", "range": [1, 5]}, "name": "get_stock_price"}\n'
        "</tool_call>",
        "Let me look that up.",
        [("get_stock_price", {"symbol": "TSLA", "range": [1, 5]})],
    ),
    # Escapes, unicode, a marker inside a string, nested objects.
    (
        '<tool_call>\n{"name": "search", "arguments": {"q": "caf\\u00e9 \\"best\\" '
        '</tool_call> \\\\ n", "opts": {"lang": "fr", "safe": true, "n": 3.5e0}}}\n'
        "</tool_call>",
        None,
        [
            (
                "search",
                {
                    "q": 'café "best" </tool_call> \\ n',
                    "opts": {"lang": "fr", "safe": True, "n": 3.5},
                },
            )
        ],
    ),
    # No arguments at all; arguments given as a JSON string.
    (
        '<tool_call>\n{"name": "ping"}\n</tool_call><tool_call>{"name": "echo", '
        '"arguments": "{\\"text\\": \\"hi\\"}"}</tool_call>',
        None,
        [("ping", {}), ("echo", {"text": "hi"})],
    ),
    # A plain answer, and one that mentions the tag but calls nothing.
    ("The capital of France is Paris.", "The capital of France is Paris.", []),
    (
        "Use <tool_call> tags like <tool_call>this</tool_call> to call tools.",
        "Use <tool_call> tags like <tool_call>this</tool_call> to call tools.",
        [],
    ),
]

LLAMA3_JSON = [
    # Llama-3.1-8B-Instruct.
    (
        '{"name": "get_weather", "parameters": {"city": "San Francisco", "unit": "fahrenheit"}}',
        None,
        [("get_weather", {"city": "San Francisco", "unit": "fahrenheit"})],
    ),
    # With <|python_tag|> kept, two calls separated by ';'.
    (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
        '{"name": "get_time", "parameters": {"timezone": "Europe/Oslo"}}',
        None,
        [("get_weather", {"city": "Oslo"}), ("get_time", {"timezone": "Europe/Oslo"})],
    ),
    # Llama 3.3 sometimes says "arguments" and adds "type".
    (
        '{"type": "function", "name": "lookup", "arguments": {"id": 42, "deep": false}}',
        None,
        [("lookup", {"id": 42, "deep": False})],
    ),
    ("Hello! How can I help you today?", "Hello! How can I help you today?", []),
    # A JSON answer that is not a call.
    ('{"answer": 42}', '{"answer": 42}', []),
]

MISTRAL = [
    # Mistral-7B-Instruct-v0.3.
    (
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "unit": '
        '"celsius"}}, {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}]',
        None,
        [
            ("get_weather", {"city": "Paris", "unit": "celsius"}),
            ("get_time", {"timezone": "Europe/Paris"}),
        ],
    ),
    # Mistral-Small-3.1 (v11 tokenizer): name[ARGS]{...} per call.
    (
        '[TOOL_CALLS]get_weather[ARGS]{"city": "Lyon"}[TOOL_CALLS]get_time[ARGS]'
        '{"timezone": "Europe/Paris"}',
        None,
        [("get_weather", {"city": "Lyon"}), ("get_time", {"timezone": "Europe/Paris"})],
    ),
    # Content first.
    (
        'Checking. [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Nice"}}]',
        "Checking.",
        [("get_weather", {"city": "Nice"})],
    ),
    ("Bonjour ! Comment puis-je vous aider ?", "Bonjour ! Comment puis-je vous aider ?", []),
]

PYTHONIC = [
    # Llama-3.2-3B-Instruct.
    (
        '[get_weather(city="San Francisco", unit="fahrenheit"), '
        'get_time(timezone="America/Los_Angeles")]',
        None,
        [
            ("get_weather", {"city": "San Francisco", "unit": "fahrenheit"}),
            ("get_time", {"timezone": "America/Los_Angeles"}),
        ],
    ),
    # Llama 4 wraps it; literals of every kind.
    (
        "<|python_start|>[search(query='llamas, (alpacas)', filters={'year': 2024, "
        "'tags': ['a', \"b\"]}, limit=5, exact=True, cursor=None), ping()]<|python_end|>",
        None,
        [
            (
                "search",
                {
                    "query": "llamas, (alpacas)",
                    "filters": {"year": 2024, "tags": ["a", "b"]},
                    "limit": 5,
                    "exact": True,
                    "cursor": None,
                },
            ),
            ("ping", {}),
        ],
    ),
    ("I can't call tools for that.", "I can't call tools for that.", []),
    ("[1, 2, 3] are the first numbers.", "[1, 2, 3] are the first numbers.", []),
]

# (parser, output, prompt ends inside <think>, expected reasoning, expected content)
REASONING = [
    # DeepSeek-R1: its template puts "<think>\n" in the prompt.
    (
        "deepseek_r1",
        "Okay, the user asks for 6*7. That is 42.\n</think>\n\nThe answer is **42**.",
        True,
        "Okay, the user asks for 6*7. That is 42.\n",
        "\n\nThe answer is **42**.",
    ),
    (
        "deepseek_r1",
        "<think>\nShort.\n</think>\n\nDone.",
        True,
        "\nShort.\n",
        "\n\nDone.",
    ),
    # Cut off while thinking: all reasoning, no content.
    (
        "deepseek_r1",
        "Let me think about <this> step by step",
        True,
        "Let me think about <this> step by step",
        None,
    ),  # fmt: skip
    # Qwen3 thinking.
    (
        "qwen3",
        "<think>\nThe user wants the capital of France.\n</think>\n\nParis.",
        False,
        "\nThe user wants the capital of France.\n",
        "\n\nParis.",
    ),
    # Qwen3 with enable_thinking=false (the prompt closed the block): all content.
    ("qwen3", "Paris is the capital of France.", False, None, "Paris is the capital of France."),
    # Qwen3-Thinking-2507: the template opened the block.
    ("qwen3", "Thinking...\n</think>\n\nHi!", True, "Thinking...\n", "\n\nHi!"),
]
