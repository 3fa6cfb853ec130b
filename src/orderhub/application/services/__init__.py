"""Use cases, one module each. Every function takes the :class:`~orderhub.application.hub.Hub`."""
