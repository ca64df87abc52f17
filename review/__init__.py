"""Looking back at what the daemon reported: pictures made from its events, on a desktop.

Nothing here runs on the Pi or ships in its install; it reads the daemon's JSON-lines events
(`--events-out`) and plots them with matplotlib (the `train` extra).
"""
