"""The deployment's mode, shared by every process through its clinical database: serving
normally, or read-only for the few seconds of a switch to other stores (``radcase-pacs
migrate --switch``), and whether it took over from another deployment by such a switch.

Read-only is enforced where writes happen, not at the edges: every database the deployment
writes to runs a guard (:class:`~radcase_pacs.mode.gate.WriteGate`) at the start of each
write transaction, so anything that would write (a store, an answer, a login, the audit
entry of a clinical read) is refused with :class:`storage.errors.ReadOnly` (503 with
``Retry-After``, 0xA700 over DIMSE) and anything that only reads goes on being served.
"""

from radcase_pacs.mode.gate import WriteGate
from radcase_pacs.mode.store import Mode, ModeStore

__all__ = ["Mode", "ModeStore", "WriteGate"]
