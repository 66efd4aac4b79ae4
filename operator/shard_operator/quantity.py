"""Kubernetes resource quantities (``1Gi``, ``500M``, ``1.5e3``) as exact decimals, for
comparing storage requests. The client library the operator uses has no parser."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_FORM = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity; ValueError naming it when it is not one."""
    match = _FORM.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number + (exponent or ""))
    except InvalidOperation as error:  # pragma: no cover - the pattern admits numbers only
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from error
    if suffix in _BINARY:
        return value * (Decimal(1024) ** _BINARY[suffix])
    return value * (Decimal(1000) ** _DECIMAL[suffix or ""])
