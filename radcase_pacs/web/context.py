"""What every handler of the web app works with: the open deployment, the page renderer,
and who is asking."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from radcase_pacs.auth.principal import Principal, principal_of
from radcase_pacs.deployment import Deployment
from radcase_pacs.web.templating import Pages


@dataclass(frozen=True)
class Web:
    deployment: Deployment
    pages: Pages

    def signing_key(self) -> str:
        return self.deployment.auth.sessions.signing_key

    @property
    def auth_on(self) -> bool:
        return self.deployment.settings.auth == "on"


def who(request: Request) -> Principal:
    """The signed-in person: the auth middleware has refused the request before a page's
    handler runs when there is none (or, with authentication off, made everyone the open
    admin)."""
    principal = principal_of(request.scope)
    assert principal is not None, "a page reached without a principal"
    return principal
