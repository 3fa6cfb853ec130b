"""A channel snapshot as bytes for the inbox, and back (msgspec, JSON).

The dispatcher stores a channel's answer to a command (``CommandOutcome.snapshot``) in the
inbox so that it is applied like every other channel message: in order, once, with its
own retries. The snapshot types are plain dataclasses; msgspec reads them back exactly."""

from __future__ import annotations

import msgspec

from orderhub.domain.model import ChannelSnapshot


def encode(snapshot: ChannelSnapshot) -> bytes:
    return msgspec.json.encode(snapshot)


def decode(body: bytes) -> ChannelSnapshot:
    return msgspec.json.decode(body, type=ChannelSnapshot)
