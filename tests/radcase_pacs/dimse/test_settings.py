"""DIMSE settings: peers, the calling-AE allow-list and the limits an administrator sets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from radcase_pacs.dimse.peers import Peer, PeerSyntaxError, parse_peers
from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.settings import Settings, load_settings


def test_peers_parse_from_the_documented_text_form() -> None:
    assert parse_peers("PACS1=10.0.0.5:104, WS2=127.0.0.1:4006") == {
        "PACS1": Peer("PACS1", "10.0.0.5", 104),
        "WS2": Peer("WS2", "127.0.0.1", 4006),
    }
    assert parse_peers("") == {}
    assert parse_peers("V6=[::1]:11112") == {"V6": Peer("V6", "::1", 11112)}


@pytest.mark.parametrize(
    "text",
    [
        "PACS1",
        "PACS1=host",
        "PACS1=host:0",
        "PACS1=host:70000",
        "=host:104",
        "A_TITLE_LONGER_THAN_16=host:104",
        "BACK\\SLASH=host:104",
        "A=h:1,A=h:2",
    ],
)
def test_a_bad_peer_is_refused_with_what_is_wrong(text: str) -> None:
    with pytest.raises(PeerSyntaxError):
        parse_peers(text)
    with pytest.raises(ValidationError, match="dimse_peers"):
        Settings(dimse_peers=text)


def test_peers_may_be_a_table_in_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "radcase.toml"
    config.write_text('[dimse_peers]\nPACS1 = "10.0.0.5:104"\nWS2 = "127.0.0.1:4006"\n')
    settings = load_settings(config)
    assert settings.peers["WS2"] == Peer("WS2", "127.0.0.1", 4006)


def test_peers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADCASE_DIMSE_PEERS", "PACS1=10.0.0.5:104")
    assert load_settings(None).peers == {"PACS1": Peer("PACS1", "10.0.0.5", 104)}


def _echo(server: DimseServer, calling: str) -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    if not assoc.is_established:
        return False
    ok = assoc.send_c_echo().Status == 0x0000
    assoc.release()
    return bool(ok)


def test_the_allow_list_refuses_other_calling_ae_titles(
    start_dimse: Callable[..., DimseServer],
) -> None:
    server = start_dimse(dimse_allowed_aets="MODALITY1, PACS1")
    assert _echo(server, "MODALITY1")
    assert not _echo(server, "INTRUDER")


def test_an_empty_allow_list_is_open(dimse: DimseServer) -> None:
    assert _echo(dimse, "ANYONE")


def test_limits_reach_the_application_entity(start_dimse: Callable[..., DimseServer]) -> None:
    server = start_dimse(
        dimse_max_associations=3,
        dimse_max_associations_per_address=2,
        dimse_max_pdu=32768,
        dimse_acse_timeout=5,
        dimse_timeout=7,
        dimse_network_timeout=9,
        dimse_artim_timeout=2,
    )
    ae = server.ae
    assert (server.slots.total, server.slots.per_address) == (3, 2)
    assert ae.maximum_pdu_size == 32768
    assert (ae.acse_timeout, ae.dimse_timeout, ae.network_timeout) == (5, 7, 9)
    assert server._server is not None
    admission = server._server.admission
    assert (admission.artim, admission.network_timeout, admission.max_pdu) == (2, 9, 32768)


def test_associations_beyond_the_maximum_are_rejected(
    start_dimse: Callable[..., DimseServer],
) -> None:
    server = start_dimse(dimse_max_associations=1)
    ae = AE(ae_title="FIRST")
    ae.add_requested_context(Verification)
    first = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    assert first.is_established
    second = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    assert second.is_rejected
    first.release()
    assert _echo(server, "THIRD")
