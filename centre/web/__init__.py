"""The district centre's console: the people who work in it, what each may do, and the record.

- :mod:`centre.web.permissions`: roles, named actions, scoped targets, the pure ``can()``.
- :mod:`centre.web.passwords`: password rules and scrypt hashing.
- :mod:`centre.web.throttle`: login throttling per account and per client address.
- :mod:`centre.web.audit`: the hash-chained audit record and its verification.
- :mod:`centre.web.store`: the :class:`ConsoleStore` protocol and its SQLite backend.
- :mod:`centre.web.console`: logins, sessions and CSRF tokens over a store and a clock.

Hostile input (usernames, passwords, session ids, CSRF tokens) raises only
:class:`centre.web.errors.ConsoleError`.
"""
