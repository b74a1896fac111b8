"""The teaching JSON API (mounted at ``/api``): teaching cases now, quizzes and progress next.

``create_api(service, identify=...)`` builds it; ``identify`` tells who is calling and in which
institution, so the API itself holds no auth policy.
"""

from teaching.api.app import Caller, create_api

__all__ = ["Caller", "create_api"]
