"""Console metrics (names fixed by deploy/metrics.yaml). Labels are codes from bounded sets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ANSWER_OUTCOMES = ("published", "queued", "refused")
CLOSING_OUTCOMES = ("published", "unavailable")
SIGN_IN_RESULTS = ("ok", "refused", "throttled")
SESSION_FILE_STAGES = ("open", "use")


class ConsoleMetrics:
    """One instance per registry, so each test gets fresh counters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sign_ins = Counter(
            "referral_bus_console_sign_ins", "Console sign-in attempts, by result.", ["result"], registry=registry)
        self.desks = Gauge(
            "referral_bus_console_desks", "Open live boards (one per browser tab).", registry=registry)
        self.answers = Counter(
            "referral_bus_console_answers",
            "Answers given in the console: published on the bus, queued while it was unreachable, or refused "
            "for good.", ["outcome"], registry=registry)
        self.outbox_pending = Gauge(
            "referral_bus_console_outbox_pending", "Answers waiting in the console's outbox for the bus.",
            registry=registry)
        self.fanout_seconds = Histogram(
            "referral_bus_console_fanout_seconds",
            "From a decision's arrival on the bus (record timestamp) to its push to the open boards.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), registry=registry)
        self.case_closings = Counter(
            "referral_bus_console_case_closings",
            "Cases closed at a desk (the police's resolution): published on the bus, or not taken because "
            "the bus was unreachable (the officer is told to try again).", ["outcome"], registry=registry)
        self.session_file_errors = Counter(
            "referral_bus_console_session_file_errors",
            "The officers' session file failed (when the console opened it, or in use later): from then on "
            "sessions are kept in memory only, and a restart signs the desks out.", ["stage"], registry=registry)
        for stage in SESSION_FILE_STAGES:
            self.session_file_errors.labels(stage)
        for outcome in CLOSING_OUTCOMES:
            self.case_closings.labels(outcome)
        for outcome in ANSWER_OUTCOMES:
            self.answers.labels(outcome)
        for result in SIGN_IN_RESULTS:
            self.sign_ins.labels(result)
