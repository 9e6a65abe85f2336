"""Outbound network safety: refuse hosts on loopback, private or other non-public addresses.

Used for remote @context fetches and notification endpoints, so that neither can be used to
reach inside the city's network (server-side request forgery).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from agilecity.errors import AgileCityError


async def refuse_private(host: str, what: str, setting: str, error: type[AgileCityError]) -> None:
    """Raise ``error`` unless every address of ``host`` is a public (global) one."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise error(f"the host of {what} cannot be resolved") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise error(f"{what} points to a non-public address; set {setting}=true to allow it")
