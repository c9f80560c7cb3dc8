"""Shared core of the trainer and the service: model, features, checkpoints, data rules."""
