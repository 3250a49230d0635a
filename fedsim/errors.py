"""Errors a user can fix; the CLI prints them as one message without a traceback."""


class FedsimError(ValueError):
    """Bad input to fedsim (experiment file, flags, data); the message names field, value and allowed."""
