"""Short references people can read out and type: `XIAN-7Q3K-2M5A` beside a UUID.

One definition for every place a person sees an alert, referral or case (the console, its
worklists, receipts): the jurisdiction code in capitals, then the first 40 bits of the id in
base32 (RFC 4648 alphabet, no padding), in two groups of four. 40 bits make a collision among
a jurisdiction's ids unlikely for millions of items; the UUID stays the identity on the bus,
and a lookup by short reference that matches two ids says so rather than guessing.
"""

from __future__ import annotations

import base64
import re
import uuid

_SHORT = re.compile(r"^(?P<jurisdiction>[A-Z0-9_]+)-(?P<a>[A-Z2-7]{4})-?(?P<b>[A-Z2-7]{4})$")


def short_ref(jurisdiction: str, item_id: uuid.UUID) -> str:
    """`XIAN-7Q3K-2M5A` for an id of the `xian` jurisdiction: stable, the same everywhere."""
    code = base64.b32encode(item_id.bytes[:5]).decode()
    return f"{jurisdiction.upper()}-{code[:4]}-{code[4:]}"


def matches(reference: str, jurisdiction: str, item_id: uuid.UUID) -> bool:
    """Whether a typed reference (any case, with or without the inner dash) names this id."""
    m = _SHORT.match(reference.strip().upper())
    if m is None:
        return False
    return f"{m['jurisdiction']}-{m['a']}-{m['b']}" == short_ref(jurisdiction, item_id)
