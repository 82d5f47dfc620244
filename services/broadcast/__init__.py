"""Public broadcast of missing-child alerts: CAP 1.2 to media, apps and outdoor screens, and a feed."""
