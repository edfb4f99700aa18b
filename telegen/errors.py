"""Errors a user can cause and fix: the CLI prints them as one line and exits 2."""


class TelegenError(Exception):
    """Base class for user-facing errors (bad config, bad files, bad paths)."""


class ConfigError(TelegenError, ValueError):
    """A configuration value is missing, malformed or out of range.

    The message names the key path, the value and what was expected.
    """


class OutputError(TelegenError, OSError):
    """Templates could not be written where they were asked to go."""


class TemplateFileError(TelegenError, ValueError):
    """A template file is missing, truncated or corrupt (names file and offset)."""


class SinkError(TelegenError):
    """The sink cannot start as asked (bad listen address, port in use, bad fault)."""


class ConfigWarning(UserWarning):
    """A config that still works but likely does not mean what it says (a
    meaning that changed); the CLI prints it as one `telegen: warning:` line."""
