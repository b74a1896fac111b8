"""Accept header handling for DICOMweb (PS3.18 §8.7, §8.3.3.1)."""

from __future__ import annotations

import pytest

from dicomweb.negotiation import (
    ANY,
    CACHED_ACCEPT_LENGTH,
    Acceptable,
    NotAcceptableHeader,
    accept_from_request,
    parse_accept,
)

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


@pytest.mark.parametrize("header", [None, "", "   ", " , ,"])
def test_missing_or_empty_header_accepts_anything(header: str | None) -> None:
    assert parse_accept(header) == [ANY]
    assert Acceptable("*/*", multipart=False, transfer_syntax=None, q=1.0, params={}) == ANY


def test_ohif_frames_header_with_unquoted_type() -> None:
    [frames] = parse_accept("multipart/related; type=application/octet-stream; transfer-syntax=*")
    assert frames.essence == "application/octet-stream"
    assert frames.multipart
    assert frames.transfer_syntax == "*"
    assert frames.q == 1.0
    assert dict(frames.params) == {}


def test_dicomweb_client_instance_header_with_quoted_type() -> None:
    [instance] = parse_accept('multipart/related; type="application/dicom"; transfer-syntax=*')
    assert (instance.essence, instance.multipart, instance.transfer_syntax) == (
        "application/dicom",
        True,
        "*",
    )


def test_explicit_transfer_syntax_and_extra_parameters() -> None:
    [accepted] = parse_accept(
        f'multipart/related; type="application/dicom"; transfer-syntax="{JPEG_BASELINE}";'
        " charset=utf-8; boundary=**"
    )
    assert accepted.transfer_syntax == JPEG_BASELINE
    assert dict(accepted.params) == {"charset": "utf-8", "boundary": "**"}


def test_metadata_header_is_single_part() -> None:
    [metadata] = parse_accept("application/dicom+json")
    assert (metadata.essence, metadata.multipart, metadata.transfer_syntax) == (
        "application/dicom+json",
        False,
        None,
    )


def test_browser_image_header_is_sorted_by_q_keeping_header_order_for_ties() -> None:
    header = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
    essences = [(a.essence, a.q) for a in parse_accept(header)]
    assert essences == [
        ("image/avif", 1.0),
        ("image/webp", 1.0),
        ("image/apng", 1.0),
        ("image/svg+xml", 1.0),
        ("image/*", 1.0),
        ("*/*", 0.8),
    ]


def test_q_values_order_ranges_and_q_zero_is_dropped() -> None:
    header = "image/png;q=0.2, application/dicom;q=0.9, image/jpeg, text/html;q=0"
    assert [(a.essence, a.q) for a in parse_accept(header)] == [
        ("image/jpeg", 1.0),
        ("application/dicom", 0.9),
        ("image/png", 0.2),
    ]


def test_only_q_zero_ranges_leave_nothing_acceptable() -> None:
    assert parse_accept("application/dicom;q=0, */*;q=0.000") == []


def test_commas_inside_quoted_strings_do_not_separate_ranges() -> None:
    header = 'multipart/related; type="application/dicom"; note="a, b", image/jpeg;q=0.5'
    accepted = parse_accept(header)
    assert [a.essence for a in accepted] == ["application/dicom", "image/jpeg"]
    assert accepted[0].params["note"] == "a, b"


def test_star_slash_star_matches_everything_and_any_container() -> None:
    [anything] = parse_accept("*/*")
    assert anything.wildcard and anything.any_container
    assert anything.matches("application/dicom")
    assert anything.accepts("application/dicom", multipart=True)
    assert anything.accepts("image/jpeg", multipart=False)


def test_subtype_wildcard_matches_only_its_type_and_only_single_part() -> None:
    [images] = parse_accept("image/*")
    assert images.wildcard and not images.any_container
    assert images.matches("image/jpeg") and images.matches("IMAGE/JLS")
    assert not images.matches("application/dicom")
    assert images.accepts("image/jpeg", multipart=False)
    assert not images.accepts("image/jpeg", multipart=True)


def test_concrete_range_matches_case_insensitively() -> None:
    [dicom] = parse_accept("Application/DICOM")
    assert dicom.matches("application/dicom") and dicom.matches("APPLICATION/dicom")
    assert not dicom.matches("application/dicom+json")
    assert not dicom.wildcard


def test_multipart_range_accepts_only_multipart_bodies() -> None:
    [instance] = parse_accept('multipart/related; type="application/dicom"')
    assert instance.accepts("application/dicom", multipart=True)
    assert not instance.accepts("application/dicom", multipart=False)


def test_multipart_without_type_uses_the_service_default_or_any() -> None:
    [bare] = parse_accept("multipart/related")
    assert (bare.essence, bare.multipart) == ("*/*", True)
    assert not bare.any_container
    [defaulted] = parse_accept(
        "multipart/related; transfer-syntax=*", default_multipart_type="application/octet-stream"
    )
    assert (defaulted.essence, defaulted.multipart, defaulted.transfer_syntax) == (
        "application/octet-stream",
        True,
        "*",
    )


def test_multipart_wildcard_subtype_is_read_as_multipart_related() -> None:
    [any_multipart] = parse_accept('multipart/*; type="image/*"')
    assert (any_multipart.essence, any_multipart.multipart) == ("image/*", True)


def test_dicomweb_client_trailing_slash_type_means_any_subtype() -> None:
    [images] = parse_accept('multipart/related; type="image/"')
    assert images.essence == "image/*"


def test_type_parameter_with_parameters_is_rejected_as_a_range() -> None:
    accepted = parse_accept('multipart/related; type="application/dicom; x=1", image/jpeg')
    assert [a.essence for a in accepted] == ["image/jpeg"]


def test_malformed_ranges_are_skipped_when_others_parse() -> None:
    header = "application/dicom;q=2, nonsense, */json, image/jpeg;q=0.5000, image/png;q=0.5"
    assert [(a.essence, a.q) for a in parse_accept(header)] == [("image/png", 0.5)]


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("nonsense", "missing '/'"),
        ("text/html;q=high", "invalid q-value 'high'"),
        ("*/json", "not a valid media range"),
        ('multipart/related; type="application/dicom', "unterminated quoted string"),
        ("a/b;q=1.5, c", "invalid q-value '1.5'"),
    ],
)
def test_header_with_no_valid_range_raises_naming_the_problem(header: str, problem: str) -> None:
    with pytest.raises(NotAcceptableHeader, match="no valid media range") as info:
        parse_accept(header)
    assert problem in str(info.value)
    assert isinstance(info.value, ValueError)


def test_params_are_read_only() -> None:
    [accepted] = parse_accept("application/dicom; charset=utf-8")
    with pytest.raises(TypeError):
        accepted.params["charset"] = "latin1"  # type: ignore[index]


def test_accept_query_parameter_overrides_the_header() -> None:
    assert accept_from_request("image/jpeg", ["application/dicom+json"]) == "application/dicom+json"


def test_several_accept_query_parameters_are_joined() -> None:
    joined = accept_from_request(None, ["image/png", 'multipart/related; type="image/jpeg"'])
    assert joined == 'image/png, multipart/related; type="image/jpeg"'
    assert [a.essence for a in parse_accept(joined)] == ["image/png", "image/jpeg"]


@pytest.mark.parametrize("query", [[], [""], ["  ", ""]])
def test_absent_or_empty_accept_query_parameter_falls_back_to_the_header(
    query: list[str],
) -> None:
    assert accept_from_request("image/jpeg", query) == "image/jpeg"
    assert accept_from_request(None, query) is None


def test_accept_query_parameter_restores_plus_decoded_as_space() -> None:
    # ?accept=application/dicom+json unencoded: form decoding turns "+" into " ".
    assert accept_from_request(None, ["application/dicom json"]) == "application/dicom+json"
    restored = accept_from_request(None, ["multipart/related; type=application/dicom xml; q=0.5"])
    assert restored == "multipart/related; type=application/dicom+xml; q=0.5"


def test_plus_restoration_leaves_quoted_strings_and_separators_alone() -> None:
    value = 'a/b; note="x y", c/d; q=1'
    assert accept_from_request(None, [value]) == value


def test_a_parsed_accept_header_is_remembered_and_never_shared() -> None:
    header = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    first = parse_accept(header)
    first.append(parse_accept("image/png")[0])
    again = parse_accept(header)
    assert len(again) == 1 and again[0].essence == "application/octet-stream"
    long_header = ", ".join(["image/png"] * 100)
    assert len(long_header) > CACHED_ACCEPT_LENGTH
    assert [a.essence for a in parse_accept(long_header)] == ["image/png"] * 100
