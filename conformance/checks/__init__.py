"""The checks, one module per service group; importing the package registers them all (the
runner orders them by service, STOW first)."""

from conformance.checks import (  # noqa: F401 - imported to register their checks
    cors,
    dimse,
    errors,
    frames,
    metadata,
    qido,
    rendered,
    stow,
    wado,
    wado_uri,
)
