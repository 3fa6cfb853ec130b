"""``python -m orderhub_octopia.simulator``: run the Octopia simulator (the ``simulator`` extra).

Its Seller API is at ``http://HOST:PORT`` (the adapter's ``base_url``) and its token
endpoint at ``http://HOST:PORT/auth/realms/maas/protocol/openid-connect/token``
(``token_url``). Sales channels: ``CDISFR`` (Cdiscount: one parcel per order, whole-order
cancellation, refusal by shipping), ``OCTOBE`` (line level) and ``AUTOFR``
(auto-acceptance); all take invoices.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import uvicorn

from orderhub_octopia.simulator.app import SimulatorConfig, create_app


def main(argv: Sequence[str] | None = None) -> None:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m orderhub_octopia.simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8702)
    p.add_argument("--client-id", default=env("OCTOPIA_SIM_CLIENT_ID", "orderhub"))
    p.add_argument("--client-secret", default=env("OCTOPIA_SIM_CLIENT_SECRET", "orderhub-secret"))
    p.add_argument("--seller-id", default=env("OCTOPIA_SIM_SELLER_ID", "98979"))
    p.add_argument("--token-ttl", type=int, default=7200, help="token lifetime, seconds")
    p.add_argument("--invoice-checks", type=int, default=1, help="reads before a report is final")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    config = SimulatorConfig(
        clients={args.client_id: args.client_secret},
        seller_id=args.seller_id,
        token_ttl=args.token_ttl,
        invoice_checks=args.invoice_checks,
    )
    print(f"Octopia simulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
