"""Offline trainer: trains the batchnorm and plain variants under identical conditions."""
