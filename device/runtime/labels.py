"""Class labels shared by training, conversion and the device.

The face order is FER2013's (the integer in its `emotion` column), so a label index means the
same thing in the CSV, in a model's output vector and in an event.
"""

FACE_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
