"""Media type parsing (RFC 9110 §8.3.1) as used by Accept and Content-Type handling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomweb.mediatypes import (
    MediaType,
    MediaTypeError,
    format_media_type,
    parse_media_type,
    quote_parameter_value,
    split_list,
)


def test_type_subtype_and_parameter_names_are_lowercased_values_keep_case() -> None:
    media = parse_media_type('Multipart/Related; TYPE="Application/DICOM"; Boundary=AbC')
    assert media == MediaType(
        "multipart", "related", {"type": "Application/DICOM", "boundary": "AbC"}
    )
    assert media.essence == "multipart/related"


def test_quoted_and_unquoted_values_are_equivalent() -> None:
    quoted = parse_media_type('application/dicom; transfer-syntax="1.2.840.10008.1.2.1"')
    bare = parse_media_type("application/dicom; transfer-syntax=1.2.840.10008.1.2.1")
    assert quoted == bare


def test_quoted_string_handles_backslash_escapes_and_separators() -> None:
    media = parse_media_type(r'text/plain; title="a \"b\"; c, d \\ e"; x=1')
    assert media.params == {"title": 'a "b"; c, d \\ e', "x": "1"}


def test_optional_whitespace_and_empty_parameters_are_allowed() -> None:
    media = parse_media_type("  image/jpeg ;; q=0.5 ;\tx = y ;  ")
    assert media.params == {"q": "0.5", "x": "y"}


def test_unquoted_value_may_contain_slash_as_real_clients_send_it() -> None:
    # OHIF: multipart/related; type=application/octet-stream; transfer-syntax=*
    media = parse_media_type("multipart/related; type=application/octet-stream; transfer-syntax=*")
    assert media.params == {"type": "application/octet-stream", "transfer-syntax": "*"}


def test_wildcards_parse_as_tokens() -> None:
    assert parse_media_type("*/*").essence == "*/*"
    assert parse_media_type("image/*;q=0.8").essence == "image/*"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty media type"),
        ("   ", "empty media type"),
        ("application", "missing '/'"),
        ("application/", "expected media subtype"),
        ("/dicom", "expected media type name"),
        ("app lication/dicom", "missing '/'"),
        ("application/dicom json", "unexpected character 'j'"),
        ("application/dicom; charset", "has no '=value'"),
        ("application/dicom; charset=", "empty value"),
        ("application/dicom; =utf-8", "expected parameter name"),
        ('application/dicom; a="x', "unterminated quoted string"),
        ('application/dicom; a="x"y', "unexpected character 'y'"),
        ("application/dicom; a=1; A=2", "duplicate parameter 'a'"),
        ("application/dicom; a=x y", "unexpected character 'y'"),
        ("appli\u00e9/dicom", "missing '/'"),
        ('text/plain; a="\x01"', "control character"),
    ],
)
def test_malformed_media_types_raise_with_a_message_naming_the_problem(
    value: str, problem: str
) -> None:
    with pytest.raises(MediaTypeError, match="position") as info:
        parse_media_type(value)
    assert problem in str(info.value)


def test_media_type_error_is_a_value_error() -> None:
    assert issubclass(MediaTypeError, ValueError)


def test_split_list_ignores_commas_inside_quotes_and_drops_empty_elements() -> None:
    header = 'a/b; x="1,2", , c/d;y="q\\",r" ,e/f,'
    assert split_list(header) == ['a/b; x="1,2"', 'c/d;y="q\\",r"', "e/f"]


def test_split_list_unterminated_quote_extends_to_the_end() -> None:
    assert split_list('a/b; x="1, c/d') == ['a/b; x="1, c/d']


def test_format_quotes_only_non_tokens() -> None:
    text = format_media_type(
        "multipart/related", {"type": "application/dicom", "transfer-syntax": "1.2.3"}
    )
    assert text == 'multipart/related; type="application/dicom"; transfer-syntax=1.2.3'


def test_quote_parameter_value_rejects_unrepresentable_characters() -> None:
    with pytest.raises(ValueError, match="cannot appear"):
        quote_parameter_value("a\nb")


def test_str_of_media_type_round_trips() -> None:
    media = parse_media_type('application/dicom+json; charset="utf-8"; note="a b"')
    assert parse_media_type(str(media)) == media


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)
_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
)


@given(st.dictionaries(_names, _values, max_size=5))
def test_any_parameter_values_survive_format_then_parse(params: dict[str, str]) -> None:
    text = format_media_type("application/dicom", params)
    assert parse_media_type(text) == MediaType("application", "dicom", params)
