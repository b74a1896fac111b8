"""The two keys a deployment's data depends on, checked to agree on both sides.

* The auth signing key: access tokens issued by the old servers verify on the new ones only
  if both sign with the same key.
* The de-identification key: teaching UIDs and date shifts are keyed hashes of it, so the
  same study exported again after the move gets the same teaching UIDs (and joins the same
  case) only with the same key.

Each is either configured (``auth_secret``, ``deid_secret``) or made once and kept in a table
(``auth_secret``, ``teaching_secret``), which the migration copies. A configured key is in
the settings, not in the data: if the source configures one, the target must configure the
same, and that is checked here rather than copied.
"""

from __future__ import annotations

from radcase_pacs.deployment import Deployment
from storage.database.base import Database


def key_problems(source: Deployment, target: Deployment) -> list[str]:
    problems = []
    pairs = (
        (
            "auth signing key",
            "auth_secret",
            _in_effect(source.settings.auth_secret, source.databases["clinical"], "auth_secret"),
            _in_effect(target.settings.auth_secret, target.databases["clinical"], "auth_secret"),
            "tokens and browser sessions from before the switch would be refused",
        ),
        (
            "de-identification key",
            "deid_secret",
            _in_effect(
                source.settings.deid_secret, source.databases["teaching"], "teaching_secret"
            ),
            _in_effect(
                target.settings.deid_secret, target.databases["teaching"], "teaching_secret"
            ),
            "a study exported again would get new teaching UIDs and make a second case",
        ),
    )
    for what, setting, theirs, ours, consequence in pairs:
        if theirs is not None and theirs != ours:
            problems.append(
                f"the {what} differs between the source and the target: {consequence}; "
                f"give the target's settings the {setting} the source has (or none on both)"
            )
    return problems


def _in_effect(configured: str | None, db: Database, table: str) -> str | None:
    if configured:
        return configured
    with db.read() as cur:
        row = cur.execute(f"SELECT secret FROM {table} WHERE id = 1").fetchone()
    return str(row[0]) if row else None
