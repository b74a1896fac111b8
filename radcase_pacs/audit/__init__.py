"""The audit log: who touched clinical data, when, which study, from where and through which
route or DIMSE association; every login and every change to users and cases.

Append-only in the database itself (triggers refuse UPDATE and DELETE), kept beside the
clinical index, readable and exportable by administrators (:mod:`radcase_pacs.audit.api`).
The clinical edges write their entry before they serve anything, and refuse the request when
the entry cannot be written (:mod:`radcase_pacs.audit.middleware`, the DIMSE server): PHI is
never served unaudited.
"""

from radcase_pacs.audit.store import Action, AuditEntry, AuditLog, Channel

__all__ = ["Action", "AuditEntry", "AuditLog", "Channel"]
