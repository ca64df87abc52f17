"""edge-emotion device daemon: camera and microphone in, emotion events out over MQTT.

Nothing in this package imports TensorFlow: a Raspberry Pi runs it with numpy, OpenCV,
a TFLite interpreter and paho-mqtt only.
"""

__version__ = "0.1.0"
