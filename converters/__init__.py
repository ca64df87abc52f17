"""Keras → TFLite conversion (full-integer int8) with a float-vs-int8 check and model cards."""
