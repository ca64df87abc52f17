"""Frames in, faces and their emotions out: sources, Haar detection, tracking, crops, the face model."""
