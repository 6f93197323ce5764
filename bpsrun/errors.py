"""The one exception type users see: a readable message that names the file or key and the fix."""


class BpsrunError(Exception):
    """A problem with the user's input or campaign state; printed without a traceback, exit code 2."""


class AwaitingLabels(BpsrunError):
    """The round's picks are out for labeling: not a failure, but the campaign cannot go on yet (exit code 3)."""
