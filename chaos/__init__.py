"""``make chaos``: the production topology on loopback under random faults, then an
independent check of what the marketplaces and the warehouse see.

* :mod:`chaos.stack`: a PostgreSQL database of its own, a broker (Redis or RabbitMQ) with
  queues of its own, the three marketplace simulators, 2 x ``orderhub serve`` behind a
  load balancer (:mod:`chaos.balancer`), 2 x ``worker``, 2 x ``scheduler``; any hub
  process can be SIGKILLed and restarted.
* :mod:`chaos.channels`: each marketplace as its customers and its simulator's control API
  see it (orders, moves, fault injection, call and webhook logs).
* :mod:`chaos.wms`: the warehouse, only through ``/api/v1``, retrying with its own
  ``Idempotency-Key`` as a real WMS does, every answer written down.
* :mod:`chaos.faults`: kills and simulator faults at moments drawn from the seeded RNG.
* :mod:`chaos.checker`: the verdict, from the simulators' state and logs and the WMS API
  only (never the hub's tables); pure, so that it is unit-tested on fabricated logs.
* :mod:`chaos.run`: the run and its JSON / Markdown report (``python -m chaos --help``).
"""
