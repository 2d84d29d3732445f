"""Errors that reach the user as one readable line.

Anything the user can fix (a bad file, a wrong option, a name clash) raises a
subclass of :class:`MuseGNNError`. The CLI prints ``str(error)`` and exits with
status 2; the pages show it with ``st.error``. Programming errors keep their
traceback so they are never disguised as user mistakes.
"""


class MuseGNNError(Exception):
    """Base class for errors caused by input the user can correct."""


class InputFileError(MuseGNNError):
    """A file is missing, unreadable, truncated or in an unsupported format."""


class ValidationError(MuseGNNError):
    """The data were read but are not acceptable (not counts, too small, NaN...)."""


class WorkspaceError(MuseGNNError):
    """The workspace is in a state that forbids the request (name clash, missing dataset...)."""
