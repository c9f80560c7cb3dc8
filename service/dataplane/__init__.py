"""The data plane: every prediction, whatever its protocol, through one typed, timed core.

`front.py` takes the data routes (POST /predict, the V2 infer routes) before FastAPI's router and answers them
itself; `core.py` reads the body, decodes, predicts, encodes (inline or off the event loop), times each stage,
counts, notes and feeds the monitor; `predict.py` and `v2.py` are the codecs of the two protocols over it;
`strict_json.py` is the one strict JSON loader both use.
"""
