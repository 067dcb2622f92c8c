"""The one error convention of hull.

Every failure that a user should see is a HullError (or a subclass) carrying a message that
names the problem in the user's terms; programs print `message` and exit non-zero. Kernel
errors stay OSError until a layer can say what was being attempted, then are wrapped.
"""


class HullError(Exception):
    """A failure with a message meant for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(HullError):
    """Bad input: a malformed file, an unknown field value, a bad flag."""


class NotFound(HullError):
    """The named object does not exist."""


class Conflict(HullError):
    """The request clashes with existing state (an id in use, a container still running)."""


class NotModified(HullError):
    """The request asked for a state that already holds (start a running container): HTTP 304."""


class Forbidden(HullError):
    """The operation is not allowed on this object (removing an image a running container uses)."""
