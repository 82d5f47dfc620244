"""The annual report (西安 第十二条): per member unit, what reached it and how it answered.

A batch command, not a worker: `compute.py` is the pure core (records in, `Report` out),
`render.py` writes Markdown, CSV and a PNG chart, `reader.py` reads the topics, and `cli.py`
is the `referral-bus report` command that joins them.
"""
