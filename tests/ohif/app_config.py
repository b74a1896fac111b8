"""The OHIF app-config (``window.config``) the test serves instead of the shipped one, which
points at a public demo server.

Why each setting: the data sources are our two DICOMweb roots (clinical and teaching), each
with the capabilities our server has (QIDO-RS ``includefield``, fuzzy matching, wildcards,
BulkDataURIs, WADO-RS frames, thumbnails); everything that would show a dialog or a tour
over the viewport or reach the internet is off, so a console error or a failed request in
the browser can only come from the viewer talking to our server.
"""

from __future__ import annotations

import json
from typing import Any

CLINICAL = "radcase"
TEACHING = "teaching"


def data_source(name: str, friendly: str, root: str) -> dict[str, Any]:
    """OHIF's DICOMweb data source over one of our roots (all three roots are the same
    service root: QIDO-RS, WADO-RS and WADO-URI are mounted together)."""
    return {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": name,
        "configuration": {
            "friendlyName": friendly,
            "name": name,
            "qidoRoot": root,
            "wadoRoot": root,
            "wadoUriRoot": root,
            "qidoSupportsIncludeField": True,
            "supportsReject": False,
            "supportsFuzzyMatching": True,
            "supportsWildcard": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "thumbnail",  # our /thumbnail resources, as the OHIF demo does
            "enableStudyLazyLoad": True,
            "staticWado": False,
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }


def app_config(clinical_root: str, teaching_root: str) -> dict[str, Any]:
    return {
        "name": "radcase-e2e",
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        # The onboarding tour pops up over the viewport and reacts to the wheel.
        "customizationService": {"global": {"ohif.tours": {"$set": []}}},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "showErrorDetails": "always",
        "investigationalUseDialog": {"option": "never"},
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 10},
        "defaultDataSourceName": CLINICAL,
        "dataSources": [
            data_source(CLINICAL, "RadCase PACS", clinical_root),
            data_source(TEACHING, "RadCase teaching collection", teaching_root),
        ],
    }


def app_config_js(clinical_root: str, teaching_root: str) -> str:
    """The script OHIF's index.html loads as /app-config.js."""
    config = json.dumps(app_config(clinical_root, teaching_root), indent=2, ensure_ascii=False)
    return f"window.config = {config};\n"
