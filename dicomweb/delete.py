"""DELETE of a study, series or instance.

PS3.18 has no DELETE transaction for the Studies service; viewers and admin tools (OHIF's
"delete", dcm4chee's and Orthanc's REST APIs) expect one on the same resource URIs. It
removes index rows first, then blobs, then cached bodies, and answers 204.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb.context import Service
from dicomweb.requests import path_uids


async def delete(request: Request) -> Response:
    service: Service = request.app.state.service
    study_uid, series_uid, sop_uid = path_uids(request)
    archive = service.archive_for(request)
    await service.blobs.run(archive.delete, study_uid, series_uid, sop_uid)
    return Response(status_code=204)
