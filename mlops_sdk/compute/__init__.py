"""Compute backends: where jobs (functions run as tracked runs) execute."""
