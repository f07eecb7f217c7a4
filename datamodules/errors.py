"""The data layer's member of the user-error family (`conventions.errors.UserError`)."""

from conventions.errors import UserError


class DataError(UserError):
    """Data or data settings that cannot be used."""
