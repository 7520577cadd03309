"""Typed errors of the INR core: every bad input maps to one of these, with a one-line message."""


class InrError(ValueError):
    """Base class: a problem the user can act on (bad file, bad image, bad shape)."""


class ImageError(InrError):
    """The image could not be read: not an image, truncated, empty or too large."""


class InrFileError(InrError):
    """The INR file is not a valid safetensors INR: wrong format, metadata, shapes or values."""
