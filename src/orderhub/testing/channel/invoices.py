"""The test channel's invoices (profile ``octopia``), processed asynchronously as Octopia
processes invoice imports: an upload is answered at once with an import id
(``IMP-<command id>``) and no verdict; the verdict comes when the hub asks
(:meth:`ChannelAccount.invoice_status`), after ``invoice_checks`` checks (account
setting, default 1; 0: the upload's answer is the verdict):

* a number starting with ``REJ`` is rejected, with the reason ``"invoice number <n> is
  refused by the test channel"``;
* a number starting with ``LATE`` never gets a verdict (the hub runs out of checks);
* any other is accepted.

An upload whose document is not a PDF matching its digest is refused at once (a
rejected verdict): what a channel's validation of the file would say."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from orderhub.channels.spi import AccountConfig, CommandOutcome, CommandView, InvoiceVerdict
from orderhub.domain.model import Invoice

REJECT_PREFIX: Final = "REJ"
SILENT_PREFIX: Final = "LATE"
IMPORT_PREFIX: Final = "IMP-"


def reason_for(number: str) -> str:
    return f"invoice number {number} is refused by the test channel"


@dataclass(kw_only=True)
class InvoiceImports:
    """The imports one account received and how often each was asked about."""

    checks_before_verdict: int = 1
    checks: dict[str, int] = field(default_factory=dict)  # import id -> times asked
    numbers: dict[str, str] = field(default_factory=dict)  # import id -> invoice number

    @classmethod
    def of(cls, config: AccountConfig) -> InvoiceImports:
        return cls(checks_before_verdict=int(config.settings.get("invoice_checks", 1)))

    def taken(self, command: CommandView, answer: CommandOutcome) -> CommandOutcome:
        """The channel's answer to an upload (the call itself already succeeded)."""
        payload: dict[str, Any] = dict(command.payload)
        number = str(payload.get("number", ""))
        import_id = f"{IMPORT_PREFIX}{command.id}"
        data = {**answer.data, "import_id": import_id}
        problem = _document_problem(command)
        if problem is not None:
            return CommandOutcome(data=data, invoice=InvoiceVerdict.reject(problem, import_id))
        self.numbers[import_id] = number
        self.checks.setdefault(import_id, 0)
        if self.checks_before_verdict <= 0:
            return CommandOutcome(data=data, invoice=self._verdict(import_id))
        return CommandOutcome(data=data, invoice=InvoiceVerdict.processing(import_id))

    def status(self, invoice: Invoice) -> InvoiceVerdict | None:
        import_id = invoice.channel_invoice_id or ""
        if import_id not in self.numbers:
            return None  # not an import of ours: nothing to say
        self.checks[import_id] += 1
        if self.checks[import_id] < self.checks_before_verdict:
            return InvoiceVerdict.processing(import_id)
        return self._verdict(import_id)

    def _verdict(self, import_id: str) -> InvoiceVerdict | None:
        number = self.numbers[import_id]
        if number.startswith(SILENT_PREFIX):
            return None
        if number.startswith(REJECT_PREFIX):
            return InvoiceVerdict.reject(reason_for(number), import_id)
        return InvoiceVerdict.accept(import_id)


def _document_problem(command: CommandView) -> str | None:
    document = command.document
    if document is None:
        return "the upload carries no file"
    if not document.content.startswith(b"%PDF-"):
        return "the file is not a PDF"
    if hashlib.sha256(document.content).hexdigest() != document.sha256:
        return "the file does not match its digest"
    return None
