"""The prediction service: both checkpoints served side by side over HTTP."""
