"""Tracking backends: the metadata store for experiments, runs, params, metrics and tags."""
