"""`tail`'s metrics: an agency reader's (`bus/delivery_metrics.py`). Bounded labels only."""

from __future__ import annotations

from bus.delivery_metrics import DeliveryMetrics


class TailMetrics(DeliveryMetrics):
    """What `tail` counts, on the registry it is given."""
