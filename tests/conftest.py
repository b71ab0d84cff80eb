"""Fixtures for every folder under tests/: the throwaway PostgreSQL (``pg_cluster``, ``pg_dsn``)
and the repository backends (``backend``, ``open_repo``, ``centre_backend``) of
``tests/pg_cluster.py``, for the tests that run a store on both backends.

Here rather than in the root conftest.py: the hang-guard tests copy that file alone into a
folder of their own, where ``tests`` is not importable."""

from tests.pg_cluster import backend, centre_backend, open_repo, pg_cluster, pg_dsn

__all__ = ["backend", "centre_backend", "open_repo", "pg_cluster", "pg_dsn"]
