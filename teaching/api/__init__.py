"""The teaching JSON API (mounted at ``/api``): teaching cases, quizzes, spaced repetition and
progress.

``create_api(cases, learning, identify=...)`` builds it; ``identify`` tells who is calling, in
which institution and with which role, so the API itself holds no access policy.
"""

from teaching.api.app import create_api
from teaching.api.caller import Caller

__all__ = ["Caller", "create_api"]
