"""The Host headers the viewer answers to (a page a browser was lured to through another name, DNS rebinding,
is refused): loopback names, the address it listens on, on a wildcard bind this machine's own names and
addresses, and whatever the user allows with `--allow-host` (`*`, any Host, only when asked for)."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence

from evals.errors import EvalsError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")  # listening on every interface
NAME = re.compile(r"(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")  # a host name, or *.domain


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> list[str]:
    """What the Host header may name when the viewer listens on `host`, `extra` (the --allow-host values) added."""
    given = [checked(name) for name in extra]
    if "*" in given:
        return ["*"]
    if host in WILDCARDS:
        own = this_machine()
    else:
        own = [] if host in LOOPBACK else [host]
    return unique([*LOOPBACK, *own, *given])


def checked(name: str) -> str:
    """A --allow-host value as the Host header carries it (lower case, an IPv6 address without brackets)."""
    name = name.strip().lower()
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if name == "*" or NAME.fullmatch(name):
        return name
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        raise EvalsError(f"'{name}' is not a host name or address (a name, an IP address, *.domain or *; "
                         "no port, no scheme)", field="--allow-host") from None


def this_machine() -> list[str]:
    """This machine's host name and FQDN, the addresses they resolve to, and its interfaces' addresses."""
    import psutil

    names = [socket.gethostname(), socket.getfqdn()]
    for name in list(names):
        try:
            names += [str(info[4][0]) for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)]
        except OSError:  # a host name that does not resolve: its addresses come from the interfaces
            pass
    names += [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
              if a.family in (socket.AF_INET, socket.AF_INET6)]
    return [name.split("%")[0].lower() for name in names if name]  # an IPv6 address without its zone (%eth0)


def header_forms(hosts: Iterable[str]) -> list[str]:
    """The names as a parsed Host header shows them: an IPv6 address in brackets ('[::1]')."""
    return ["*" if h == "*" else f"[{h}]" if ":" in h else h for h in hosts]


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
