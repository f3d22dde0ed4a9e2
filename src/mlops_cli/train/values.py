"""Numbers as logs spell them: 1.5, 2.999E-04, nan, NaN, -nan(ind), inf, Infinity, 1.2e+4.

Every pattern here is linear: bounded repetitions only, no nested quantifiers.
"""

from __future__ import annotations

import math
import re
from typing import Optional

# One number, or a NaN/Inf spelling. Used inside larger patterns; no groups of its own.
VALUE = (
    rb"[-+]?(?:"
    rb"[0-9]{1,40}(?:\.[0-9]{0,40})?(?:[eE][-+]?[0-9]{1,4})?"
    rb"|\.[0-9]{1,40}(?:[eE][-+]?[0-9]{1,4})?"
    rb"|[nN][aA][nN](?:\([iI][nN][dD]\)|\([a-z0-9]{0,20}\))?"
    rb"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?"
    rb")"
)
VALUE_RE = re.compile(VALUE)


def to_float(token: bytes | str | None) -> Optional[float]:
    """A log token as a float; NaN/Inf spellings included; None when it is not a number."""
    if token is None:
        return None
    if isinstance(token, str):
        token = token.encode("ascii", "replace")
    token = token.strip().strip(b"'\",")
    if not token:
        return None
    try:
        return float(token)
    except ValueError:
        pass
    low = token.lower()
    if b"nan" in low:  # -nan(ind), nan(snan), ...
        return math.nan
    if low.lstrip(b"+-").startswith(b"inf"):
        return -math.inf if low.startswith(b"-") else math.inf
    return None


def is_bad(x: Optional[float]) -> bool:
    """True for NaN and +-Inf (None is 'not printed', not bad)."""
    return x is not None and not math.isfinite(x)


def fmt(x: Optional[float]) -> str:
    """A value the way a person wants to read it in a finding."""
    if x is None:
        return "n/a"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.3g}"
    return f"{x:.4g}"
