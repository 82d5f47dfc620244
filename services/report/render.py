"""The report as Markdown (for people), CSV (for the office's spreadsheet) and a PNG chart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rules.catalog import catalog
from services.report.compute import Report

#: 西安 第十二条: member units report by 12月15日, district offices by 12月20日.
MEMBER_UNITS_DUE = (12, 15)
DISTRICT_OFFICES_DUE = (12, 20)

CSV_COLUMNS = (
    "agency", "received", "acknowledged_on_time", "acknowledged_late", "not_acknowledged", "no_deadline",
    "median_ack_minutes", "escalations", "open", "drills",
)

_OPEN_SOURCES = {
    "alerts.states": "open = the alerts service's tracked state (topic alerts.states) is not done or closed",
    "referrals.responses": "open = no 'done' answer on referrals.responses (alerts.states held no state "
                           "of these referrals)",
}


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def to_csv(report: Report) -> str:
    """One line per agency: the fixed columns, then one `kind:<code>` column per situation."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"kind:{k}" for k in report.kinds)])
    for r in report.rows:
        writer.writerow([
            r.agency, r.received, r.acknowledged_on_time, r.acknowledged_late, r.not_acknowledged,
            r.no_deadline, _fmt(r.median_ack_minutes), r.escalations, r.open, r.drills,
            *(r.by_kind.get(k, 0) for k in report.kinds),
        ])
    return out.getvalue()


def _agency_name(code: str) -> str:
    agency = catalog().agencies.get(code)
    return f"{agency.zh} (`{code}`)" if agency else f"`{code}`"


def to_markdown(report: Report, chart: str | None = None) -> str:
    y = report.year
    lines = [
        f"# Anti-trafficking annual report: {report.jurisdiction}, {y}",
        "",
        f"西安 第十二条: member units report by {y}-{MEMBER_UNITS_DUE[0]:02d}-{MEMBER_UNITS_DUE[1]:02d}, "
        f"district offices by {y}-{DISTRICT_OFFICES_DUE[0]:02d}-{DISTRICT_OFFICES_DUE[1]:02d}.",
        "",
        f"- referrals: {report.referrals} (drills, not counted in the figures: {report.drills})",
        f"- copies dropped by referral id: {report.duplicates_dropped}; "
        f"answer copies dropped by response id: {report.response_duplicates_dropped}",
        f"- {_OPEN_SOURCES[report.open_source]}",
    ]
    if report.open_cases is not None:
        lines.append(f"- missing-child cases still open (cases.changes): {report.open_cases}")
    lines += [
        "- on time: the first answer of any kind (acknowledged, accepted, rejected, done) by the referral's ack_by",
        "",
        "| agency | received | on time | late | not acknowledged | no deadline | median ack (min) "
        "| escalations | open | drills |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.rows:
        lines.append(
            f"| {_agency_name(r.agency)} | {r.received} | {r.acknowledged_on_time} | {r.acknowledged_late} "
            f"| {r.not_acknowledged} | {r.no_deadline} | {_fmt(r.median_ack_minutes)} | {r.escalations} "
            f"| {r.open} | {r.drills} |")
    lines += ["", "## Referrals received by situation", "",
              "| agency | " + " | ".join(f"`{k}`" for k in report.kinds) + " |",
              "|---|" + "---:|" * len(report.kinds)]
    for r in report.rows:
        lines.append(f"| `{r.agency}` | " + " | ".join(str(r.by_kind.get(k, 0)) for k in report.kinds) + " |")
    if chart:
        lines += ["", f"![referrals and on-time answers by agency]({chart})"]
    return "\n".join(lines) + "\n"


def to_png(report: Report, path: Path) -> Path:
    """A horizontal bar chart: received, on time and late per agency."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the command runs on servers and in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = [r for r in report.rows if r.received or r.drills]
    names = [r.agency for r in rows]
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.45 * len(rows) + 1.2)))
    try:
        ys = list(range(len(rows)))
        h = 0.27
        ax.barh([y - h for y in ys], [r.received for r in rows], h, label="received")
        ax.barh(ys, [r.acknowledged_on_time for r in rows], h, label="answered on time")
        ax.barh([y + h for y in ys], [r.acknowledged_late + r.not_acknowledged for r in rows], h,
                label="late or not answered")
        ax.set_yticks(ys, names)
        ax.invert_yaxis()
        ax.set_xlabel("referrals")
        ax.set_title(f"{report.jurisdiction} {report.year}: referrals by agency (drills excluded)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def write_all(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write `report-<jurisdiction>-<year>.{md,csv,png}` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"report-{report.jurisdiction}-{report.year}"
    png = to_png(report, out_dir / f"{stem}.png")
    csv_path = out_dir / f"{stem}.csv"
    csv_path.write_text(to_csv(report), encoding="utf-8")
    md = out_dir / f"{stem}.md"
    md.write_text(to_markdown(report, chart=png.name), encoding="utf-8")
    return {"md": md, "csv": csv_path, "png": png}
