"""The one exception type a user may cause."""


class BshwError(Exception):
    """A bad config, CLI value, data file or checkpoint.

    The ``bshw`` CLI prints the message on one line (``bshw: error: ...``) and exits with status 2;
    library callers catch it like any other exception. Raise it with a message that names the bad
    value and what would be accepted.
    """
