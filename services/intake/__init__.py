"""The intake service: authenticated HTTP publishing of events, receipts, and need-to-know delivery."""
