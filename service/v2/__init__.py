"""The Open Inference Protocol (KServe V2) over REST: routes, the tensor codec (JSON and binary), its schemas."""
