"""Slowing down token guessing: failed credentials counted per client address.

Owns one rule. After ``FREE_FAILURES`` wrong tokens (login form or bearer
header) from one address, that address must wait before it may present a
token again: one second, then twice as long after each further failure, up
to ``MAX_WAIT_SECONDS``. The caller refuses every token the address sends
while it waits, right or wrong, so guessing on gains nothing. A success
clears the address; one quiet for ``FORGET_SECONDS`` is forgotten.

Invariants:
* Memory is bounded: at most ``max_addresses`` addresses are remembered;
  when full, the one whose last failure is oldest is dropped first.
* An IPv6 address counts as its /64 network: one host usually holds a whole
  /64 and could otherwise change address for every guess.
* Times are passed in (monotonic seconds), so the rule is a pure function of
  the failures and the clock; thread-safe (the server has several threads).

Behind a reverse proxy every request comes from the proxy's address, so the
count is shared by everybody behind it.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

FREE_FAILURES = 10
MAX_WAIT_SECONDS = 300
FORGET_SECONDS = 3600
MAX_ADDRESSES = 4096


@dataclass
class _Record:
    failures: int
    last: float  # when the last failure was seen

    def until(self) -> float:
        """When the address may try again."""
        if self.failures < FREE_FAILURES:
            return self.last
        doublings = min(self.failures - FREE_FAILURES, 16)  # 2**16 s is past any cap
        wait: int = min(MAX_WAIT_SECONDS, 2**doublings)
        return self.last + wait


def client_key(address: str) -> str:
    """The address whose failures count together: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    """Failed-credential counts per client address, with exponential waits."""

    def __init__(self, max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_addresses = max_addresses
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def wait(self, address: str, now: float) -> int:
        """Whole seconds the address must still wait before presenting a token; 0 if none."""
        with self._lock:
            record = self._fresh(client_key(address), now)
            left = record.until() - now if record else 0.0
        return math.ceil(left) if left > 0 else 0

    def failed(self, address: str, now: float) -> None:
        key = client_key(address)
        with self._lock:
            record = self._fresh(key, now)
            if record is None:
                record = self._records[key] = _Record(0, now)
            record.failures += 1
            record.last = now
            self._records.move_to_end(key)
            while len(self._records) > self.max_addresses:
                self._records.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._records.pop(client_key(address), None)

    def _fresh(self, key: str, now: float) -> _Record | None:
        """The address's record, unless it has been quiet long enough to be forgotten."""
        record = self._records.get(key)
        if record is not None and now - record.last > FORGET_SECONDS:
            del self._records[key]
            return None
        return record
