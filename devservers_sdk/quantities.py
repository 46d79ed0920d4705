"""Kubernetes resource quantities (``100Gi``, ``500Mi``, ``250m``, ``1.5``, ``1e3``, ``10G``), parsed in one place.

The grammar is apimachinery's ``resource.ParseQuantity``: an optional sign, a decimal number, then one
suffix, either binary (``Ki Mi Gi Ti Pi Ei``, powers of 1024), decimal (``n u m k M G T P E``, powers of
1000; note ``m`` is milli and ``M`` mega, and there is no ``K``) or an integer exponent (``e3``, ``E-2``).

Values are ``Decimal`` so that ``250m`` is exactly 0.25 and ``1Ei`` is exactly 2**60: a float would make
"is the request above the limit?" answer wrongly at the edges.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

__all__ = ["QUANTITY_PATTERN", "format_bytes", "parse_quantity"]

QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
"""The regular expression Kubernetes publishes for ``resource.Quantity`` (what controller-gen puts in CRDs).

It is a little looser than the parser: it lets ``1e1.5`` through, which ``parse_quantity`` (like
``resource.ParseQuantity``) refuses.
"""

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_EXAMPLES = "e.g. 100Gi, 500Mi, 2, 250m or 1.5"


def parse_quantity(text: str | int) -> Decimal:
    """The exact value of a Kubernetes quantity: ``parse_quantity("1Gi") == 1073741824``.

    Integers are accepted as they come from YAML (``cpu: 2``); booleans and floats are not, because
    ``cpu: 0.1`` written as a float has already lost its exact value.

    Raises:
        ValueError: the text is not a quantity; the message quotes it and gives examples.
    """
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"invalid quantity {text!r}: expected a string such as {_EXAMPLES}")
    if isinstance(text, int):
        return Decimal(text)
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f'invalid quantity "{text}": use a number with an optional unit, {_EXAMPLES}')
    # Enough precision for 2**60 times any number a person writes; the default 28 digits would round.
    with localcontext() as context:
        context.prec = 100
        try:
            number = Decimal(match["number"])
            if match["binary"]:
                return number * (1024 ** _BINARY[match["binary"]])
            if match["decimal"] is not None:
                return number.scaleb(_DECIMAL[match["decimal"]])
            if match["exponent"] is not None:
                return number.scaleb(int(match["exponent"]))
            return number
        except (ArithmeticError, InvalidOperation):
            raise ValueError(f'invalid quantity "{text}": out of range') from None


def format_bytes(value: Decimal | int) -> str:
    """The shortest exact quantity for a number of bytes: ``100Gi``, ``10G``, ``1536Mi``, ``0``.

    Binary suffixes win ties (memory and disks are sized in them). Fractions are printed plainly.
    """
    value = Decimal(value)
    if value != value.to_integral_value():
        return format(value.normalize(), "f")
    count = int(value)
    if count == 0:
        return "0"
    candidates = []
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if count % 1024**power == 0:
            candidates.append(f"{count // 1024**power}{suffix}")
            break
    for suffix, power in sorted(_DECIMAL.items(), key=lambda item: -item[1]):
        if power > 0 and count % 10**power == 0:
            candidates.append(f"{count // 10**power}{suffix}")
            break
    candidates.append(str(count))
    return min(candidates, key=len)
