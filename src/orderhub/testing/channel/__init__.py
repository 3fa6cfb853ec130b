"""The test channel: a stand-in marketplace whose abilities switch per account.

Plugin name ``testchannel`` (entry point ``orderhub.testing.channel:plugin``). Each account
picks a **profile** that mimics one real channel's capabilities:

``topi``
    acceptance and rejection of the whole order (rejection only before acceptance),
    shipment per line with partial shipments and serial numbers for flagged lines, no
    delivery step, no seller cancellation, webhook intake.
``octopia``
    acceptance, rejection and shipment per line; acceptance does not release the order (the
    channel releases it: ``released``), delivery reported by the channel, seller cancellation
    with Octopia's reason codes (each allowed only in some statuses), decidable cancellation
    requests, lines fulfilled by the channel, polling intake. Capabilities per sales
    channel (``sales_channels``) and Octopia's own refusals before anything is queued
    (:mod:`orderhub.testing.channel.octopia`); supply modes per line; the channel's parcels.
``spresso``
    no acceptance or rejection (orders arrive ready), several fulfilments, shipment per
    fulfilment, short ships (``final``) cancel the rest as ``out_of_stock``, the seller
    reports delivery, no cancellation, webhook intake. Spresso's Order as a webhook body
    (lines keyed ``F:V``), its ``X-Spresso-Hmac-SHA256`` signature, a natural dedupe key,
    the 200 ack, and ``in_transit`` with the frozen fulfilled quantities once a fulfilment
    is shipped (:mod:`orderhub.testing.channel.spresso`).

Account settings (``AccountConfig.settings``):

``profile``
    ``topi`` (default), ``octopia`` or ``spresso``.
``base_url``
    the test channel server (:mod:`orderhub.testing.channel_server`). Without it, calls are
    recorded in memory on the account (``account.calls``) for unit tests.
``token``
    optional bearer token sent to the server.
``timeout``
    seconds per call (default 5).
``acknowledge_on_receipt``
    ``true``: a new order gets an ``acknowledge`` follow-up command (mimics topi).
``capabilities``
    optional overrides of the profile's :class:`Capabilities` fields, e.g.
    ``{"shipment": "order", "short_ship": true}`` (scopes by value, booleans, ``intake`` list).
``sales_channels``
    octopia: per sales channel ``line_level``, ``manual_acceptance``,
    ``one_parcel_per_order``, ``line_cancellation``, ``refusal_ships`` (see the module).
``carriers``
    the carrier labels the channel knows; a shipment naming another is refused (422).
``client_secrets``
    spresso: the client secret(s) webhooks are signed with (several: a rotation).

Intake document (one JSON object, or a JSON array of them, per message)::

    {
      "id": "T-1001",                      # channel order id               (required)
      "status": "created",                 # channel status, free text      (required)
      "lines": [                           #                                (required)
        {"id": "L1", "title": "Phone", "quantity": 2,     # required per line
         "sku": "SKU-1", "price": 19900,                  # unit price in minor units
         "requires_serial": false, "parent": null,        # parent: bundle line id
         "fulfilment": "F1",                              # fulfilment id
         "supply_mode": "Seller",                         # octopia: Seller|Fulfillment|Xdock
         "parcels": [{"number": "P1", "carrier": "DHL",   # parcels the channel reports
                      "tracking_url": null, "quantity": 1}]}
      ],
      "sales_channel": "CDISFR",           # octopia: the order's sales channel
      "fulfilments": [{"id": "F1", "fulfilled_by": "seller"}],   # or "channel"
      "counters": {"L1": {"accepted": 2, "rejected": 0, "shipped": 1, "delivered": 0}},
      "released": false,                   # the channel allows dispatch
      "cancellations": [
        {"id": "C1", "initiator": "customer", "reason": "customer_request",
         "state": "requested",             # requested | accepted | refused
         "lines": [{"line": "L1", "quantity": 1}]}        # empty or absent: whole order
      ],
      "number": "1001", "currency": "EUR", "placed_at": "2026-01-01T12:00:00Z",
      "ship_by": null, "customer": {"name": "...", "email": "..."},
      "shipping_address": {"name": "...", "line1": "...", "postal_code": "...",
                           "city": "...", "country_code": "DE"}
    }

``reason`` is a canonical reason (``customer_request``...) or an Octopia reason code
(``seller-refusal``...); the raw value is kept as the channel reason. Counters not given
are zero. Invalid JSON, a missing required field, a wrong type or a counter for an unknown
line raise :class:`InvalidTestOrder` (the inbox marks the message failed with that text).

Outbound, ``execute`` sends ``POST {base_url}/calls`` with the JSON body ``{command_id,
kind, order, payload}`` (``order``: the channel order id; ``payload``: the command's
payload, each line item also carrying its ``channel_line_id``; an Octopia-profile
cancellation also carries ``reason_code``) and the header ``Idempotency-Key: <command
id>``. A 2xx answer becomes the command's result. 429 (with ``Retry-After``), 408, 409, 5xx,
timeouts and connection errors are transient; 401 is a configuration error; any other 4xx
fails the command at once with the server's ``message``.
"""

from __future__ import annotations

from orderhub.testing.channel.account import (
    RecordedCall,
    TestChannelAccount,
    TestChannelPlugin,
    plugin,
)
from orderhub.testing.channel.documents import (
    InvalidTestOrder,
    TestOrderDocument,
    decode_orders,
    encode_order,
    to_snapshot,
)
from orderhub.testing.channel.profiles import (
    NAME,
    OCTOPIA_CODE_FOR_REASON,
    OCTOPIA_REASON_CODES,
    PROFILES,
    Profile,
    capabilities_for,
    octopia_like,
    profile_of,
    spresso_like,
    topi_like,
)

__all__ = [
    "NAME",
    "OCTOPIA_CODE_FOR_REASON",
    "OCTOPIA_REASON_CODES",
    "PROFILES",
    "InvalidTestOrder",
    "Profile",
    "RecordedCall",
    "TestChannelAccount",
    "TestChannelPlugin",
    "TestOrderDocument",
    "capabilities_for",
    "decode_orders",
    "encode_order",
    "octopia_like",
    "plugin",
    "profile_of",
    "spresso_like",
    "to_snapshot",
    "topi_like",
]
