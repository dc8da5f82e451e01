"""Upstream backends. :class:`~gateway.backends.base.Backend` is the protocol routes use."""
