"""What runs the models: the TFLite interpreter, the model card check, the class labels."""
