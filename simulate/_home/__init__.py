"""The shipped registry inside an installed package.

In the repository the registry lives at the top level (``data/``, ``scenarios/``) —
the one source of truth.  A wheel maps those directories here as package data
(``setup.cfg``: ``package_dir``), so an installed ``ipsim`` finds its series, plans,
observations, reference class and scenarios with :mod:`importlib.resources`.
"""
