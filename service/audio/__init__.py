"""Speech to text in the service: decoding uploads (decode), the speech model's facts and
prompts (speech_model), log-mel windows (features), timestamp segments (segments), one
transcription over an engine (transcriber), and live bidirectional sessions (session)."""
