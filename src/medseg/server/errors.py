"""Errors of the server layer, and the HTTP status each :class:`MedsegError` maps to."""

from __future__ import annotations

from medseg.errors import (
    ConfigError,
    DatasetError,
    GeometryError,
    ImageReadError,
    ImageWriteError,
    MedsegError,
    ModelFormatError,
)


class NotFoundError(MedsegError):
    """An unknown case id or session id (never a path: ids come from the listing)."""


class TooManySessionsError(MedsegError):
    """Every session slot is taken by a session that is not idle yet."""


class AuthError(MedsegError):
    """A request without the server's token."""


#: Most specific class first; the first match gives the status.
STATUS = (
    (NotFoundError, 404),
    (AuthError, 401),
    (TooManySessionsError, 429),
    (GeometryError, 422),
    (ConfigError, 422),
    (DatasetError, 422),
    (ImageReadError, 422),
    (ImageWriteError, 507),
    (ModelFormatError, 500),
    (MedsegError, 400),
)


def status_for(error: MedsegError) -> int:
    """HTTP status for a medseg error (4xx for anything the request caused)."""
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 400
