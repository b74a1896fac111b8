"""What every DICOMweb route reads from its request: the target resource's UIDs from the path
(PS3.18 §10.4.1, §8.2) and the Acceptable Media Types (PS3.18 §8.7, §8.3.3.1)."""

from __future__ import annotations

from starlette.requests import Request

from dicomweb.errors import HttpError, bad_request, check_query_encoding
from dicomweb.negotiation import Acceptable, NotAcceptableHeader, accept_from_request, parse_accept
from storage.query import is_valid_uid

_PATH_UIDS = (
    ("study", "StudyInstanceUID"),
    ("series", "SeriesInstanceUID"),
    ("instance", "SOPInstanceUID"),
)


def path_uids(request: Request) -> tuple[str, str | None, str | None]:
    """Study, series and instance UIDs from the path, each checked (400 names a bad one);
    series and instance are None on the routes that stop above them."""
    values: list[str | None] = []
    for key, keyword in _PATH_UIDS:
        value = request.path_params.get(key)
        if value is not None and not is_valid_uid(value):
            raise HttpError(400, f"{keyword} in the path: {value!r} is not a valid UID")
        values.append(value)
    study_uid, series_uid, sop_uid = values
    if study_uid is None:
        raise LookupError(f"route {request.url.path!r} has no {{study}} path parameter")
    return study_uid, series_uid, sop_uid


def instance_uids(request: Request) -> tuple[str, str, str]:
    """Study, series and instance UIDs of a route under ``.../instances/{instance}``, where
    all three are always in the path."""
    study_uid, series_uid, sop_uid = path_uids(request)
    if series_uid is None or sop_uid is None:
        raise LookupError(f"route {request.url.path!r} does not name an instance")
    return study_uid, series_uid, sop_uid


def acceptables(request: Request) -> list[Acceptable]:
    """The Acceptable Media Types, most preferred first: the ``accept`` query parameter, else
    the Accept header (PS3.18 §8.3.3.1); 400 when nothing in it can be read."""
    check_query_encoding(request)
    header = accept_from_request(
        request.headers.get("accept"), request.query_params.getlist("accept")
    )
    try:
        return parse_accept(header)
    except NotAcceptableHeader as exc:
        raise bad_request("Accept", str(exc)) from exc
