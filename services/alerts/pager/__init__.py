"""`referral-bus page`: what one duty desk of an agency is told, rendered from the decisions the
alerts service publishes (`bus/desk.py`).

- `render`: a notice as a line for people, or as JSON;
- `memory`: what a desk remembers across restarts (SQLite): the notices shown, the cases it knows
  closed, how far it has read, and which desk of the agency it is;
- `feed`: the two decision topics, read without a consumer group, and the broker's health;
- `loop`: the desk itself: read, decide, show, and ride out a broker outage.
"""
