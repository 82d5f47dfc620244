"""The alerts service: urgent police alerts for missing children, answers, escalation and cases."""
