"""A local SMTP server (aiosmtpd) standing in for the email provider: it can refuse for a while,
refuse one address for good, or hold a conversation open until told to go on."""

import asyncio
import email
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from bench.harness import free_port


@dataclass
class Provider:
    """What the server does, changed by the test while it runs, and what it accepted."""

    refuse_all: bool = False  # "451 try again later" to every message (a provider failing for a while)
    refuse_for_good: set[str] = field(default_factory=set)  # addresses it always refuses (451, as a fussy one does)
    hold_next: bool = False  # hold the next conversation (to an address it takes) at RCPT until ``release``
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (Message-ID, recipient) of each accepted message
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [message_id for message_id, _to in self.accepted]


class _Handler:
    def __init__(self, provider: Provider):
        self.provider = provider

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        provider = self.provider
        if provider.hold_next and address not in provider.refuse_for_good:
            provider.hold_next = False
            provider.holding.set()
            while not provider.release.is_set():  # the conversation stays open, mid-send
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        provider = self.provider
        if provider.refuse_all or set(envelope.rcpt_tos) & provider.refuse_for_good:
            with provider.lock:
                provider.refused += 1
            return "451 4.3.0 Temporarily unable to accept mail, try again later"
        message = email.message_from_bytes(envelope.content)
        with provider.lock:
            provider.accepted.extend((str(message["Message-ID"]), to) for to in envelope.rcpt_tos)
        return "250 OK: queued"


@contextmanager
def smtp_provider() -> Iterator[Provider]:
    provider = Provider(port=free_port())
    controller = Controller(_Handler(provider), hostname="127.0.0.1", port=provider.port)
    controller.start()
    try:
        yield provider
    finally:
        provider.release.set()
        controller.stop()
