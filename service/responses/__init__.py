"""The Responses API on top of the chat pipeline: a CreateResponseRequest becomes a
ChatRequest (conversation, tools, structured output), the chat result becomes output
items, and stored responses chain turns with previous_response_id."""
