"""The one exception the data loaders raise: it names the file (and line) and says what is wrong."""


class DataError(ValueError):
    """Input data that cannot be used; the message is meant for the person who supplied it."""
