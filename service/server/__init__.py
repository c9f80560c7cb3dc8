"""The server wing: the launcher (`python -m service`), uvicorn's configuration from the settings, the guarded
protocol (limits for hostile or broken clients), the one-write answer, the metrics directory and the signals."""
