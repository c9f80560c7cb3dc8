"""The live paired comparison of the two served models: pure statistics over recorded predictions and outcomes."""
