"""What the tests share besides fixtures: paths and the CI-aware skip rule, the one way to start a real server
(`python -m service`), the one way to build an app client, and helpers for runs on disk."""
