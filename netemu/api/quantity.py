"""Resource quantities (apimachinery resource.Quantity): ``100m``, ``1.5``, ``128Mi``, ``1G``, ``1e3``.

The scheduler compares requests with node allocatable and the kubelet turns limits into cgroup
values; both need the same exact reading of the string, so parsing uses ``Decimal`` and one table.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

QUANTITY_RE = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_PATTERN = re.compile(QUANTITY_RE)
ERROR = f"quantities must match the regular expression '{QUANTITY_RE}'"

BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
           "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
           "P": Decimal("1e15"), "E": Decimal("1e18")}


def parse_decimal(value: Any) -> Decimal:
    """The exact amount; raises ValueError with upstream's message on anything malformed."""
    if isinstance(value, bool):
        raise ValueError(ERROR)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(ERROR)
        return Decimal(str(value))
    if not isinstance(value, str):
        raise ValueError(ERROR)
    m = _PATTERN.match(value.strip())
    if not m:
        raise ValueError(ERROR)
    number, suffix = m.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        raise ValueError(ERROR) from None
    if suffix in BINARY:
        return amount * BINARY[suffix]
    if suffix in DECIMAL:
        return amount * DECIMAL[suffix]
    exp = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if exp:
        return amount.scaleb(int(exp.group(1)))
    raise ValueError("unable to parse quantity's suffix")


def parse(value: Any) -> float:
    """The amount as a float (CPU in cores, memory in bytes)."""
    return float(parse_decimal(value))


def milli_value(value: Any) -> int:
    """CPU in millicores, rounded up like ``Quantity.MilliValue`` (``0.1`` -> 100, ``1m`` -> 1)."""
    return int((parse_decimal(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def value(value: Any) -> int:
    """Whole units rounded up like ``Quantity.Value`` (memory bytes, pods)."""
    return int(parse_decimal(value).to_integral_value(rounding="ROUND_CEILING"))
