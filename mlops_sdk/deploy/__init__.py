"""Deployer backends: where and how a model version is served."""
