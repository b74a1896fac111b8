"""WADO-RS metadata of a study, series or instance (PS3.18 §10.4.1.1.2, §F.2).

The body is assembled from the per-instance DICOM JSON stored at ingest, cached as bytes
under the series' version token, and finished with one ``bytes.replace`` that puts the
request's public root into the BulkDataURIs. No DICOM is parsed here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb.context import Service
from dicomweb.errors import not_acceptable
from dicomweb.httpcache import REVALIDATE, entity_tag, precondition
from dicomweb.lanes import in_thread
from dicomweb.requests import acceptables, path_uids
from storage.instance_json import ROOT_MARK

DICOM_JSON = "application/dicom+json"


async def metadata(request: Request) -> Response:
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = path_uids(request)
    if not any(
        a.matches(DICOM_JSON) or a.matches("application/json") for a in acceptables(request)
    ):
        raise not_acceptable("metadata is available as application/dicom+json")
    archive = service.archive_for(request)
    body, version = await in_thread(archive.metadata, study_uid, series_uid, sop_uid)
    root = service.root(request)
    # The version token changes with every instance stored into or deleted from the study or
    # series; the root is part of the body (BulkDataURIs), so it is part of the tag too.
    tag = entity_tag("metadata", version, root)
    headers = {"ETag": str(tag), "Cache-Control": REVALIDATE, "Vary": "Accept, Accept-Encoding"}
    not_modified = precondition(request, tag, headers)
    if not_modified is not None:
        return not_modified
    body = body.replace(ROOT_MARK, root.encode("utf-8"))
    return Response(body, media_type=DICOM_JSON, headers=headers)
