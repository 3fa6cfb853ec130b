"""What an adapter sees of the seller's invoices (part of the SPI; import it from
:mod:`orderhub.channels.spi`).

An ``invoice`` command reaches :meth:`ChannelAccount.execute
<orderhub.channels.spi.ChannelAccount.execute>` with its document attached
(``command.document``: the bytes, read by the hub when the command was claimed) and
``command.payload`` naming the invoice (``invoice_id``, ``number``, ``document_id``,
``filename``, ``content_type``, ``size``, ``sha256``). The adapter answers with
``CommandOutcome(invoice=...)``:

* :meth:`InvoiceVerdict.accept`: the channel took it for good (no ``invoice`` at all
  means the same);
* :meth:`InvoiceVerdict.reject`: the channel refused the invoice itself (its reason kept,
  an ``invoice_rejected`` attention reason opened);
* :meth:`InvoiceVerdict.processing`: the channel decides later (Octopia answers an upload
  with an import id and a report that comes asynchronously). The hub then asks
  :meth:`ChannelAccount.invoice_status <orderhub.channels.spi.ChannelAccount.invoice_status>`
  at the configured interval, at most the configured number of times.

A failed call (timeout, 5xx, bad credentials) is raised as a ``ChannelError`` as for any
command: it says nothing of the invoice, which stays ``pending`` while its command is retried.
"""

from __future__ import annotations

from dataclasses import dataclass

from orderhub.domain.entities import InvoiceState


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandDocument:
    """A document a command carries (an invoice's PDF), as stored by the hub.

    ``sha256`` is the hex digest of ``content``; the hub checked it when it read it."""

    id: str
    content_type: str
    size: int
    sha256: str
    content: bytes
    filename: str | None = None

    def __repr__(self) -> str:  # never the bytes in a log line
        return (
            f"CommandDocument(id={self.id!r}, content_type={self.content_type!r}, "
            f"size={self.size}, filename={self.filename!r})"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class InvoiceVerdict:
    """The channel's word on an invoice: ``accepted``, ``rejected`` (with its reason) or
    ``sent`` (it is processing it: ask again later). ``channel_invoice_id`` is the
    channel's id for it (Octopia: the import id), kept on the invoice."""

    state: InvoiceState
    reason: str | None = None
    channel_invoice_id: str | None = None

    def __post_init__(self) -> None:
        if self.state is InvoiceState.PENDING:
            raise ValueError("a channel's verdict is accepted, rejected or sent (processing)")

    @classmethod
    def accept(cls, channel_invoice_id: str | None = None) -> InvoiceVerdict:
        return cls(state=InvoiceState.ACCEPTED, channel_invoice_id=channel_invoice_id)

    @classmethod
    def reject(cls, reason: str, channel_invoice_id: str | None = None) -> InvoiceVerdict:
        return cls(
            state=InvoiceState.REJECTED, reason=reason, channel_invoice_id=channel_invoice_id
        )

    @classmethod
    def processing(cls, channel_invoice_id: str | None = None) -> InvoiceVerdict:
        return cls(state=InvoiceState.SENT, channel_invoice_id=channel_invoice_id)

    @property
    def decided(self) -> bool:
        return self.state.is_final
