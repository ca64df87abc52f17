"""A live web dashboard for a fleet of edge-emotion devices, with SQLite history.

`python -m dashboard` subscribes to the devices' MQTT topics, keeps every event in SQLite and
pushes what changes to the browser. It reads only the JSON messages the devices publish (the
contract is device/event_schema.json): it imports nothing from the daemon, so it runs on any
machine that reaches the broker, Pi or not.
"""
