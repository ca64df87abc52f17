"""What the daemon says: smoothing with hysteresis, valence and arousal, the messages and their schema."""
