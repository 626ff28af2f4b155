"""The one exception type whose message is shown to users as a one-line error."""


class PgprobeError(Exception):
    """Bad input or a refused operation; the CLI prints ``pgprobe: error: <message>``."""
