"""Training of edge-emotion's face and voice models (needs tensorflow-cpu)."""
