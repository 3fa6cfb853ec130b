"""A conformance kit for channel adapters: one pytest suite that every adapter package
runs against its own simulator, checking the SPI contract the same way for every channel.

The hub runs in-process on the fakes (:mod:`orderhub.testing.fakes`), its queue drained by
hand and its clock moved by hand; the adapter's plugin talks real HTTP to the adapter's
simulator. The adapter package writes a :class:`ConformanceDriver` and a test class::

    from orderhub.testing.conformance import ConformanceSuite

    class TestAcmeConformance(ConformanceSuite):
        @pytest.fixture
        def conformance_driver(self, acme_simulator) -> AcmeDriver:
            return AcmeDriver(acme_simulator)

What it checks, for every channel:

* each channel state maps to the documented canonical status;
* duplicated and reordered messages converge, and the feed holds no duplicates;
* each snapshot is complete (it covers what the channel showed before), and late ones
  never move an order back;
* every declared refusal (the capabilities say no, or the adapter's pre-flight does) is
  refused before anything is sent: the simulator received no call;
* every command reaches the simulator once, in order per order;
* transient errors are retried, permanent ones fail with the channel's message.
"""

import pytest

# the kit's asserts show their values, as in a test module (its modules not yet imported)
pytest.register_assert_rewrite(
    "orderhub.testing.conformance.checks", "orderhub.testing.conformance.suite"
)

from orderhub.testing.conformance.driver import ChannelCall, ConformanceDriver, Delivery  # noqa: E402
from orderhub.testing.conformance.rig import HubRig, fingerprint  # noqa: E402
from orderhub.testing.conformance.suite import ConformanceSuite  # noqa: E402

__all__ = [
    "ChannelCall",
    "ConformanceDriver",
    "ConformanceSuite",
    "Delivery",
    "HubRig",
    "fingerprint",
]
