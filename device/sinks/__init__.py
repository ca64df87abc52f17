"""Where messages go: MQTT (with Home Assistant discovery), a JSON-lines file, an annotated video."""
