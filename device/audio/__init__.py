"""Sound in, voice emotion out: audio sources, log-mel, VAD, the voice model and its listener thread."""
