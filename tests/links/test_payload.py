"""The SHL payload: what `link create` writes and what `import` accepts, rule by rule."""

from __future__ import annotations

import base64
import json
import os

import pytest

from healthwallet import keys
from healthwallet.errors import BadInputError, UsageError
from healthwallet.links import payload as shl

ID = "A" * 43
URL = f"https://relay.example/m/{ID}"


def _encode(body: object) -> str:
    raw = json.dumps(body).encode()
    return "shlink:/" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _good(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {"url": URL, "key": "k" * 43, "exp": 1_900_000_000,
                               "flag": "LP", "label": "knee", "v": 1}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_a_created_link_round_trips_through_the_strict_parser() -> None:
    link = shl.LinkPayload(URL, os.urandom(32), 1_900_000_000, "LP", "knee MRI")
    parsed = shl.parse_link(link.uri())
    assert parsed == link
    assert link.uri().startswith("shlink:/")
    assert list(link.to_json()) == ["url", "key", "exp", "flag", "label", "v"]
    assert len(link.to_json()["key"]) == 43


def test_a_viewer_url_carries_the_link_after_a_hash() -> None:
    link = shl.LinkPayload(URL, os.urandom(32))
    for viewer in ("https://viewer.example/", "https://viewer.example/#"):
        text = link.uri(viewer)
        assert text.startswith("https://viewer.example/#shlink:/")
        assert shl.parse_link(text) == link


@pytest.mark.parametrize(
    ("passcode", "long_term", "single_file", "flag"),
    [(False, False, False, ""), (True, False, False, "P"), (False, True, False, "L"),
     (True, True, False, "LP"), (False, False, True, "U"), (False, True, True, "LU")],
    ids=["none", "P", "L", "LP", "U", "LU"],
)
def test_flag_letters_are_in_alphabetical_order(
    passcode: bool, long_term: bool, single_file: bool, flag: str
) -> None:
    assert shl.make_flag(passcode=passcode, long_term=long_term, single_file=single_file) == flag


def test_single_file_with_passcode_is_refused() -> None:
    with pytest.raises(UsageError, match="flag U with P"):
        shl.make_flag(passcode=True, long_term=False, single_file=True)


def test_manifest_ids_carry_256_bits_and_urls_stay_within_128_characters() -> None:
    link_id = keys.b64url(os.urandom(32))  # how the relay names a link
    assert len(link_id) == 43
    assert shl.check_manifest_url(f"https://relay.example/m/{link_id}")
    with pytest.raises(BadInputError, match="at most 128"):
        shl.check_manifest_url("https://relay.example/" + "x" * 70 + "/m/" + link_id)
    with pytest.raises(BadInputError, match="256 bits"):
        shl.check_manifest_url("https://relay.example/m/short")
    with pytest.raises(BadInputError, match="scheme"):
        shl.check_manifest_url(f"http://relay.example/m/{link_id}")


def test_label_over_80_characters_is_refused() -> None:
    assert shl.check_label("x" * 80) == "x" * 80
    with pytest.raises(UsageError, match="at most 80"):
        shl.check_label("x" * 81)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "not a SMART Health Link"),
        ("shlink:/", "no payload"),
        ("shlink:/%%%%", "not base64url"),
        ("shlink:/" + "A" * 5000, "longer than"),
        (_encode([1, 2]), "not a JSON object"),
        (_encode(_good(url=None)), "no url"),
        (_encode(_good(url=7)), "url is not a string"),
        (_encode(_good(key="short")), "43 base64url"),
        (_encode(_good(exp="tomorrow")), "exp"),
        (_encode(_good(exp=True)), "exp"),
        (_encode(_good(flag="PL")), "flag"),
        (_encode(_good(flag="PU")), "flag"),
        (_encode(_good(flag="LLP")), "flag"),
        (_encode(_good(flag="X")), "flag"),
        (_encode(_good(flag=["L"])), "flag"),
        (_encode(_good(label="y" * 81)), "label"),
        (_encode(_good(v=2)), "version"),
        (_encode(_good(url="https://relay.example/m/abc")), "256 bits"),
        (_encode(_good(url="javascript:alert(1)")), "scheme"),
    ],
    ids=["not-a-link", "empty", "bad-base64", "huge", "array", "no-url", "url-type",
         "short-key", "exp-text", "exp-bool", "flag-order", "flag-U-with-P", "flag-repeat",
         "flag-letter", "flag-type", "long-label", "version", "low-entropy", "scheme"],
)
def test_hostile_links_are_refused_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message) as caught:
        shl.parse_link(text)
    assert caught.value.exit_code == 2
    assert caught.value.hint


def test_unknown_members_are_ignored_as_the_spec_asks() -> None:
    parsed = shl.parse_link(_encode(_good(extra={"x": 1})))
    assert parsed.flag == "LP" and parsed.label == "knee"
