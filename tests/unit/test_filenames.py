"""File names from credentials and files: no controls, bidi characters or look-alike slashes."""

from __future__ import annotations

import unicodedata

import pytest

from healthwallet.filenames import safe_file_name

FALLBACK = "record-1"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("labs.json", "labs.json"),
        ("Å ö 检查.pdf", "Å ö 检查.pdf"),
        ("invoice\u202efdp.sh", "invoice_fdp.sh"),  # RIGHT-TO-LEFT OVERRIDE
        ("a\u2066b\u2069c\u200fd\u061ce", "a_b_c_d_e"),  # isolates, RLM, ALM
        ("a\u200bb\ufeffc", "a_b_c"),  # zero-width space, BOM
        ("bin\u2215sh", "bin_sh"),
        ("..\u2044..\u2044etc\uff0fpasswd", "_.._etc_passwd"),
        ("x\u29f8y\u2216z\uff3cw", "x_y_z_w"),
        ("../../.bashrc", "bashrc"),
        ("..\\..\\evil.exe", "evil.exe"),
        ("tab\there\x1b[31mred\x7f\x85\x9b", "tab_here_[31mred___"),
        ("line\u2028break\u2029", "line_break_"),
        ("CON", "_CON"),
        ("lpt1.txt", "_lpt1.txt"),
        ("name. . ", "name"),
        ('a:b*c?"d<e>f|g', "a_b_c__d_e_f_g"),
        ("..", FALLBACK),
        (".", FALLBACK),
        ("", FALLBACK),
        ("\u202e\u202e", FALLBACK),
        ("/", FALLBACK),
    ],
)
def test_names_are_free_of_controls_bidi_and_lookalike_slashes(name: str, expected: str) -> None:
    assert safe_file_name(name, FALLBACK) == expected


def test_every_code_point_that_misleads_is_replaced() -> None:
    # the BMP and the tag block hold every control, format and separator character
    for code in [*range(0x10000), *range(0xE0000, 0xE0080)]:
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            assert char not in safe_file_name(f"a{char}b", FALLBACK), hex(code)


def test_long_names_are_capped_and_keep_their_extension() -> None:
    name = safe_file_name("é" * 300 + ".pdf", FALLBACK)
    assert len(name.encode()) <= 200 and name.endswith(".pdf")
