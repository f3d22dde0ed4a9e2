import pytest

from mlops_cli.errors import UsageError
from mlops_cli.units import format_bytes, parse_bytes


@pytest.mark.parametrize(
    "n,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (80 * 1024**3, "80.0 GiB"), (None, "n/a")]
)
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    "text,n",
    [
        ("80GiB", 80 * 1024**3),
        ("24 GB", 24 * 10**9),
        ("81920MiB", 81920 * 1024**2),
        ("1.5T", int(1.5 * 1024**4)),
        ("512", 512),
    ],
)
def test_parse_bytes(text, n):
    assert parse_bytes(text) == n


@pytest.mark.parametrize("text", ["", "lots", "12 XB", "GiB"])
def test_parse_bytes_rejects(text):
    with pytest.raises(UsageError):
        parse_bytes(text)
