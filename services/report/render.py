"""The report as Markdown (for people, in Chinese), CSV (for the office's spreadsheet) and a PNG chart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rules.catalog import catalog
from services.report.compute import AgencyRow, Report

#: 西安 第十二条: member units report by 12月15日, district offices by 12月20日.
MEMBER_UNITS_DUE = (12, 15)
DISTRICT_OFFICES_DUE = (12, 20)

CSV_COLUMNS = (
    "agency", "received", "acknowledged_on_time", "acknowledged_late", "not_acknowledged", "rejected",
    "no_deadline", "median_ack_minutes", "escalations", "open", "drills",
)

#: Where the answers and the open duties come from: the alerts service's published decisions.
ANSWERS_NOTE = ("答复 = 告警服务已采纳的答复（alerts.states 中的记录），以总线收到答复的时间计；"
                "被拒绝的答复（answers.refused：无权答复的单位、已办结、格式不符等）不计入")
OPEN_NOTE = "未办结 = 告警服务记录的状态（alerts.states）既非办结也非结案（尚无状态的转介计为未办结）"

#: The chart's colours: on time is the calm colour, late and unanswered the warning ones, a
#: rejection its own (it is an answer, not a delay). Colour-blind safe (Okabe-Ito).
COLOURS = {
    "on_time": "#009E73",      # bluish green
    "late": "#E69F00",         # orange: warning
    "not_answered": "#D55E00",  # vermilion: the stronger warning
    "rejected": "#7F7F7F",     # grey
    "no_deadline": "#56B4E9",  # sky blue
}
_LEGEND = {"on_time": "按时确认", "late": "超时确认", "not_answered": "未确认", "rejected": "拒绝",
           "no_deadline": "无确认时限"}
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
              "Source Han Sans SC", "Microsoft YaHei", "SimHei")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _csv_row(r: AgencyRow, kinds: tuple[str, ...]) -> list[object]:
    return [r.agency, r.received, r.acknowledged_on_time, r.acknowledged_late, r.not_acknowledged, r.rejected,
            r.no_deadline, _fmt(r.median_ack_minutes), r.escalations, r.open, r.drills,
            *(r.by_kind.get(k, 0) for k in kinds)]


def to_csv(report: Report) -> str:
    """One line per agency, then `total`: the fixed columns, then one `kind:<code>` column per situation."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *(f"kind:{k}" for k in report.kinds)])
    for r in report.rows:
        writer.writerow(_csv_row(r, report.kinds))
    writer.writerow(_csv_row(report.total(), report.kinds))
    return out.getvalue()


def _agency_name(code: str) -> str:
    agency = catalog().agencies.get(code)
    return f"{agency.zh}（`{code}`）" if agency else f"`{code}`"


def _kind_name(code: str) -> str:
    kind = catalog().event_kinds.get(code)
    return kind.zh if kind and kind.zh else code


def _jurisdiction_name(code: str) -> str:
    j = catalog().jurisdictions.get(code)
    return j.zh if j else code


def _line(name: str, r: AgencyRow) -> str:
    return (f"| {name} | {r.received} | {r.acknowledged_on_time} | {r.acknowledged_late} | {r.not_acknowledged} "
            f"| {r.rejected} | {r.no_deadline} | {_fmt(r.median_ack_minutes)} | {r.escalations} | {r.open} "
            f"| {r.drills} |")


def to_markdown(report: Report, chart: str | None = None) -> str:
    y = report.year
    total = report.total()
    rate = total.on_time_rate
    lines = [
        f"# 反拐工作年度报告：{_jurisdiction_name(report.jurisdiction)}（`{report.jurisdiction}`），{y}年",
        "",
        f"依据西安 第十二条：各成员单位于 {y}-{MEMBER_UNITS_DUE[0]:02d}-{MEMBER_UNITS_DUE[1]:02d} 前、"
        f"各区县反拐办于 {y}-{DISTRICT_OFFICES_DUE[0]:02d}-{DISTRICT_OFFICES_DUE[1]:02d} 前报送。",
        "",
        f"- 转介总数：{report.referrals} 件（演练 {report.drills} 件，不计入各项数字）",
        f"- 按时确认 {total.acknowledged_on_time} 件，超时确认 {total.acknowledged_late} 件，"
        f"未确认 {total.not_acknowledged} 件，拒绝 {total.rejected} 件，无确认时限 {total.no_deadline} 件"
        + (f"；按时确认率 {rate:.0%}（按时 ÷（按时 + 超时 + 未确认）；拒绝不计入）" if rate is not None else ""),
        f"- 按转介编号去除的重复转介：{report.duplicates_dropped} 件",
        f"- {ANSWERS_NOTE}",
        f"- {OPEN_NOTE}",
    ]
    if report.open_cases is not None:
        lines.append(f"- 仍未结案的儿童失踪案件（cases.changes）：{report.open_cases} 件")
    lines += [
        "- 按时确认：在转介的确认时限（ack_by）前作出的第一个答复（确认收到、接受或办结）；"
        "拒绝单独计为拒绝，不算按时，也不算超时",
        "",
        "| 单位 | 收到 | 按时确认 | 超时确认 | 未确认 | 拒绝 | 无时限 | 确认用时中位数（分钟） "
        "| 升级 | 未办结 | 演练 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.rows:
        lines.append(_line(_agency_name(r.agency), r))
    lines.append(_line("**合计**", total))
    lines += ["", "## 各单位收到的转介（按事项）", "",
              "| 单位 | " + " | ".join(f"{_kind_name(k)}（`{k}`）" for k in report.kinds) + " |",
              "|---|" + "---:|" * len(report.kinds)]
    for r in report.rows:
        lines.append(f"| {_agency_name(r.agency)} | " + " | ".join(str(r.by_kind.get(k, 0)) for k in report.kinds)
                     + " |")
    lines.append("| **合计** | " + " | ".join(str(total.by_kind.get(k, 0)) for k in report.kinds) + " |")
    if chart:
        lines += ["", f"![各单位转介及答复情况]({chart})"]
    return "\n".join(lines) + "\n"


def _cjk_font() -> str | None:
    """A CJK font matplotlib can use (deploy/install-browser.sh installs one): without it Chinese
    labels are empty boxes. Fonts installed after matplotlib built its cache are added here."""
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    for name in _CJK_FONTS:
        if name in known:
            return name
    for path in font_manager.findSystemFonts():
        lower = path.lower()
        if any(key in lower for key in ("wqy", "notosanscjk", "noto-cjk", "sourcehan", "msyh", "simhei")):
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):
                continue
    known = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FONTS if name in known), None)


def to_png(report: Report, path: Path) -> Path:
    """Stacked horizontal bars per agency: on time, late, not answered, rejected, no deadline; the
    total received at the end of each bar."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the command runs on servers and in CI
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    font = _cjk_font()
    rows = [r for r in report.rows if r.received or r.drills]
    names = [catalog().agencies[r.agency].zh if r.agency in catalog().agencies else r.agency for r in rows]
    parts = {
        "on_time": [r.acknowledged_on_time for r in rows],
        "late": [r.acknowledged_late for r in rows],
        "not_answered": [r.not_acknowledged for r in rows],
        "rejected": [r.rejected for r in rows],
        "no_deadline": [r.no_deadline for r in rows],
    }
    with matplotlib.rc_context({"font.sans-serif": [font, "DejaVu Sans"] if font else ["DejaVu Sans"],
                                "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(10, max(2.8, 0.5 * len(rows) + 1.6)))
        try:
            ys = list(range(len(rows)))
            left = [0] * len(rows)
            for key, values in parts.items():
                ax.barh(ys, values, 0.6, left=left, color=COLOURS[key], label=_LEGEND[key], edgecolor="white")
                left = [a + b for a, b in zip(left, values, strict=True)]
            for y, r in zip(ys, rows, strict=True):
                ax.text(r.received + 0.1, y, f"共 {r.received}", va="center", fontsize=9)
            ax.set_yticks(ys, names)
            ax.invert_yaxis()
            ax.set_xlabel("转介（件）")
            total = report.total()
            ax.set_title(f"{_jurisdiction_name(report.jurisdiction)} {report.year}年 各单位转介答复情况（不含演练）"
                         f"  合计 {total.received} 件，按时 {total.acknowledged_on_time}，"
                         f"超时或未确认 {total.late_or_unanswered}，拒绝 {total.rejected}", fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlim(0, max([r.received for r in rows] + [1]) * 1.15)
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
