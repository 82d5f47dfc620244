"""Build rules/packs/*.yaml from the reference extraction (../shared/plan/rules.yaml) plus the
review decisions recorded below, checked against the seed texts.

Run once (`.venv/bin/python tools/build_packs.py [../shared/plan/rules.yaml]`); the packs are the
project's data afterwards and are edited by hand (xian.yaml carries line-by-line comments and is
not regenerated unless --all is given). Decisions that differ from the reference are listed in
DEVIATIONS and printed at the end.

Review principles
* Routing recipients: a report clause ("…报告当地公安机关", "通报…移交线索") routes the event to
  the body that receives the report (lead) with the reporter's sector department cooperating.
  Plans with (X负责,Y配合) tags (山东, 云阳) follow the tags exactly.
* Conditions the event kind already implies (missing *child*, *foreign* victim who wishes to
  stay, parents *not found* …) are dropped: testing them again would only lose events whose
  field is unknown. Eligibility (符合条件的) is the agency's own assessment: it becomes a
  constraint, not a routing condition.
* "相关部门/有关部门" (unnamed) is never routed: a rule with no named lead inherits the parent's
  lead (override without `lead`), or else goes to the joint-conference office for triage with
  its candidate leads; an unnamed partner is dropped and mentioned in notes.
* Parent plans with no seed (national_2021, national_2013) hold only duties that at least two
  seeds of the generation show (or that one seed shows while the others name the duty without a
  unit), each citing a seed and listing corroborating clauses in also_cited.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REF_PATH = Path(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else Path(
    "../shared/plan/rules.yaml")
OUT = Path("rules/packs")
WRITE_XIAN = "--all" in sys.argv

SEED = {
    "xx_city": "000_7dbaf2c26904eceb.txt",
    "xian": "001_56bdd0a940e471fd.txt",
    "shandong": "002_91d53b139879ca8f.txt",
    "honghe": "003_a8bbf767012b485e.txt",
    "yunyang": "004_ab66e05e62b6cad7.txt",
}
XX, XA, SD, HH, YY = (SEED[k] for k in ("xx_city", "xian", "shandong", "honghe", "yunyang"))

REF: dict[str, dict[str, Any]] = {}
for _r in yaml.safe_load(REF_PATH.read_text(encoding="utf-8")):
    REF[_r["id"][:5]] = _r

DEVIATIONS: list[str] = []


# ---------------------------------------------------------------------------------- helpers

def C(field: str, op: str = "eq", value: Any = True, unknown: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"field": field, "op": op, "value": value}
    if unknown:
        c["if_unknown"] = unknown
    return c


FEMALE = C("person.sex", "eq", "female")
CHILD = C("person.is_child", "eq", True)
AGE16 = C("person.age", "ge", 16)
CANNOT_RETURN = C("person.cannot_or_will_not_return_home", "eq", True)
ELIGIBLE = ("Only for victims who qualify (符合条件的): the agency assesses eligibility.")
PRIVACY_TEXT = ("Protect the victim's privacy and prevent secondary harm "
                "(保护被拐卖受害人隐私,使其免受二次伤害).")
NO_BUYING_FAMILY = ("Never let the buying family go on raising the child "
                    "(不得由收买家庭继续抚养).")


def S(file: str, clause: str, quote: str) -> dict[str, str]:
    return {"file": file, "clause": clause, "quote": quote}


def src(ref: str) -> dict[str, str]:
    s = REF[ref]["source"]
    return S(s["file"], s["clause"], s["quote"])


def codes(items: list[dict[str, Any]]) -> list[str]:
    return [i["code"] for i in items if i["code"] != "unspecified"]


def rule(ref: str | None, key: str, **kw: Any) -> dict[str, Any]:
    """A pack rule from reference `ref`, with review changes in kw."""
    r = REF[ref] if ref else {}
    out: dict[str, Any] = {"key": key}
    if kw.pop("override", False):
        out["override"] = True
    refs = kw.pop("refs", [ref] if ref else [])
    if refs:
        out["ref"] = [REF[x]["id"] for x in refs]
    inherit = set(kw.pop("inherit", ()))
    if "when" not in inherit:
        kinds = kw.pop("kind", None) or [r["trigger"]["event"]]
        when: dict[str, Any] = {"kind": kinds if len(kinds) > 1 else kinds[0]}
        if kw.get("all"):
            when["all"] = kw.pop("all")
        if kw.get("any"):
            when["any"] = kw.pop("any")
        kw.pop("all", None)
        kw.pop("any", None)
        out["when"] = when
    else:
        kw.pop("kind", None)
    for name, default in (("lead", lambda: codes(r["lead"])),
                          ("cooperating", lambda: codes(r["cooperating"])),
                          ("action", lambda: r["action"]),
                          ("urgency", lambda: r["urgency"]["level"])):
        if name in inherit:
            kw.pop(name, None)
            continue
        value = kw.pop(name) if name in kw else default()
        if name == "cooperating":
            lead = out.get("lead", [])
            value = [c for c in value if c not in lead]
            if not value and "cooperating" not in inherit:
                value = []
        out[name] = value
    if kw.get("candidate_lead") is None and ref and not out.get("lead") and "lead" not in inherit:
        cands = codes(r.get("candidate_lead", []))
        if cands:
            out["candidate_lead"] = cands
    if kw.get("candidate_lead"):
        out["candidate_lead"] = kw.pop("candidate_lead")
    kw.pop("candidate_lead", None)
    constraints = list(kw.pop("constraints", []))
    if ref and kw.pop("ref_constraints", True):
        for p in r.get("prohibitions", []) or []:
            constraints.append(p)
        if r.get("ordering"):
            constraints.append("Ordering: " + r["ordering"])
        for p in r.get("privacy", []) or []:
            if p.get("via") == "this_clause" and p["text"] not in constraints:
                constraints.append(p["text"])
    else:
        kw.pop("ref_constraints", None)
    if constraints:
        out["constraints"] = list(dict.fromkeys(constraints))
    if "fields" in kw:
        out["fields"] = kw.pop("fields")
    out["source"] = kw.pop("source", None) or src(ref)  # type: ignore[arg-type]
    also = kw.pop("also", [])
    if also:
        out["also_cited"] = [a if isinstance(a, dict) else src(a) for a in also]
    inferred = kw.pop("inferred", r.get("inferred", False) if ref else False)
    out["inferred"] = bool(inferred)
    notes = kw.pop("notes", None)
    if notes is None and ref:
        notes = r.get("notes", "")
    if notes:
        out["notes"] = " ".join(str(notes).split())
    if kw:
        raise SystemExit(f"{key}: unknown options {sorted(kw)}")
    return out


REPORT_KINDS_2021 = [
    "suspected_trafficking_found_general", "medical_staff_suspects_trafficking",
    "teacher_suspects_trafficking", "transport_hub_suspected_trafficking",
    "hotel_or_venue_staff_suspects_trafficking", "forced_labour_found",
    "forced_begging_or_forced_crime_found", "online_trafficking_information",
    "womens_federation_finds_unknown_origin_person", "organ_trafficking_found",
]
REPORT_KINDS_2013 = [*REPORT_KINDS_2021, "transport_worker_suspects_trafficking",
                     "entertainment_venue_prostitution_signs"]

# ------------------------------------------------------------------------- national_2021

TRIAGE_2021 = {"agency": "anti_trafficking_office", "urgency": "prompt",
               "source": S(XX, "第九条", "并在公安机关设办公室承担反拐日常工作")}
PRIVACY_2021 = {
    "id": "victim_privacy", "text": PRIVACY_TEXT,
    "kinds": ["rescued_*", "foreign_victim_*", "chinese_victim_trafficked_abroad",
              "poor_victim_social_assistance", "guardian_failing_duty",
              "trafficking_petition_received", "victim_interview_needed",
              "temporary_guardianship", "victim_privacy"],
    "ref": [REF["XX-44"]["id"]],
    "source": S(XX, "第五十六条", "保护被拐卖受害人隐私,使其免受二次伤害"),
}

N21 = [
    rule("XX-01", "refer_suspected_trafficking", kind=REPORT_KINDS_2021, refs=[],
         also=[S(XA, "第十条", "不断完善发现、举报拐卖人口犯罪工作机制")],
         notes="Any unit that finds suspected trafficking refers it to the police (XX 第四十条; "
               "西安 第十条 has the police run the discovery-and-report mechanism)."),
    rule("XX-02", "missing_child_rapid_search", refs=[], all=[],
         also=["XA-02", "YY-06", S(HH, "三、二是", "快速查找")]),
    rule("XX-03", "missing_child_info_release", refs=[], all=[],
         also=[S(XA, "第五条 para 1", "要积极配合公安机关开通失踪未成年人紧急信息发布渠道")]),
    rule("XX-04", "child_case_one_chief", refs=[], also=["XA-03", "YY-07"]),
    rule("XX-05", "unknown_origin_child_dna", refs=[], all=[], cooperating=[],
         also=["XA-08", "YY-09"]),
    rule("XX-06", "hukou_child_dna", refs=[],
         all=[C("person.origin_unknown", "eq", True, "match")],
         also=[S(HH, "三、三是", "寻亲、落户")]),
    rule("XX-07", "rescued_child_no_parents", refs=[], all=[],
         also=["SD-08", "YY-11", S(XA, "第六条 para 5", "由公安机关提供相关材料,交由民政部门给予临时性救助服务")],
         notes="The buying-family ban is in XX 第四十九条 and in both 2013-generation plans; "
               "西安 has no such wording, so its pack inherits the ban from here."),
    rule("XX-10", "transport_worker_report", refs=[], lead=["police"], cooperating=["transport"],
         all=[], also=["XA-11"],
         action="Receive the report of a transport worker who stopped suspected trafficking "
                "(or sexual abuse of a minor) and handle it; the transport department supports."),
    rule("XX-11", "entertainment_venue_clues", refs=[], lead=["police"], cooperating=[],
         also=["XA-14"], urgency="prompt",
         action="Receive the clues on paid escort, prostitution or trafficking in an "
                "entertainment venue and handle them."),
    rule("XX-17", "online_trafficking_crackdown", refs=[], cooperating=["cyberspace"],
         urgency="prompt", also=["XA-17", "XA-18"],
         action="Find and handle trafficking information on online platforms and the crimes "
                "behind it, with the cyberspace department."),
    rule("XA-06", "wandering_minor_rescue", refs=[], lead=["civil_affairs"], cooperating=[],
         also=["XX-20"],
         action="Find and assist the wandering or begging minor, or the minor forced into crime."),
    rule("XX-26", "victim_find_relatives", refs=[], kind=["rescued_victim_identity_unknown"],
         all=[], also=[S(HH, "三、三是", "寻亲")]),
    rule("XX-28", "victim_assistance", refs=[], also=["XA-25"]),
    rule("XX-29", "victim_medical_care", refs=[], also=["XA-27"]),
    rule("XX-30", "victim_legal_aid", refs=[], also=["XA-28"]),
    rule("XX-31", "victim_job_training", refs=[], all=[AGE16], constraints=[ELIGIBLE],
         also=["XA-26"], notes="Common to the generation: 16 or older (XX: and willing; "
                               "西安: cannot or will not go home)."),
    rule("XX-15", "rescued_child_schooling", refs=[], all=[],
         also=[S(HH, "三、三是", "回归学校")]),
    rule(None, "victim_return_home", kind=["rescued_victim_return_home"], lead=["civil_affairs"],
         cooperating=[], urgency="unspecified",
         action="Arrange the rescued victim's return home and help with practical problems so "
                "the return to family, school and society succeeds.",
         source=S(XA, "第六条 para 5", "做好被拐卖受害人的返乡工作"),
         also=[S(HH, "三、三是", "回归家庭和社区")]),
    rule("XA-20", "foreign_victim_return", refs=[], kind=["foreign_victim_wishes_to_return"],
         all=[], cooperating=["immigration"], also=["XX-39"], inferred=True,
         action="Repatriate the rescued foreign victim who wishes to go home (rehabilitation "
                "transit and return), with the immigration administration.",
         notes="西安 第十条 gives repatriation to the police; XX 第六十九条 has immigration "
               "cooperate with an unnamed lead. Police lead + immigration is their union."),
    rule("XX-38", "foreign_victim_stay", refs=[], all=[FEMALE],
         also=[S(HH, "三、五是", "被害人送返")]),
    rule("XX-40", "chinese_victim_abroad", refs=[], all=[], cooperating=[],
         also=[S(XA, "第十条", "做好被解救涉外人员的遣返和接收工作")]),
    rule("XX-47", "major_serial_case", refs=[], also=["XA-30"]),
    rule("XX-45", "case_publicity", refs=[], cooperating=[], also=["XA-33"]),
    rule(None, "prosecution_decision", kind=["prosecution_decision"],
         lead=["police", "procuratorate", "court"], cooperating=[], urgency="unspecified",
         action="Apply the law strictly to ringleaders, repeat offenders and those who "
                "trafficked many; agree on the legal standards and evidence rules.",
         source=S(XX, "第五十一条", "法院、检察院、公安机关应当加强沟通配合"),
         also=["XA-31"]),
    rule("HH-08", "annual_report", refs=[], also=["XA-32"]),
    rule("XX-36", "disability_assessment", refs=[], all=[],
         also=[S(HH, "三、三是", "医疗、康复")]),
    rule("XX-48", "buyer_market", refs=[],
         also=[S(XA, "第八条", "综合整治拐卖人口犯罪的重点地区、重点行业和“买方市场”")]),
    rule("XA-10", "informant_reward", refs=[],
         also=[S(XX, "第七十七条", "公安机关要完善公民举报奖励制度")]),
    rule("XX-44", "victim_privacy", refs=[], also=["SD-33", "YY-38"]),
]

# ------------------------------------------------------------------------- national_2013

TRIAGE_2013 = {"agency": "anti_trafficking_office", "urgency": "prompt",
               "source": S(YY, "二、", "联席会议办公室设在县公安局刑事侦查部门，承担联席会议日常工作")}
PRIVACY_2013 = {
    "id": "victim_privacy", "text": PRIVACY_TEXT,
    "kinds": ["rescued_*", "foreign_victim_*", "chinese_victim_trafficked_abroad",
              "consular_assistance_needed", "cross_region_case", "temporary_guardianship",
              "poor_victim_social_assistance", "victim_privacy"],
    "ref": [REF["YY-38"]["id"], REF["SD-33"]["id"]],
    "source": S(YY, "三、(三)1.", "保护被拐卖受害人隐私，使其免受二次伤害"),
}

N13 = [
    rule("SD-34", "refer_suspected_trafficking", refs=[], kind=REPORT_KINDS_2013,
         lead=["police"], cooperating=[], inferred=True, urgency="prompt",
         action="Receive the report of suspected trafficking and handle it: the police lead the "
                "anti-trafficking mechanism in which the public takes part.",
         source=S(YY, "三、(二)2.(1)", "进一步完善公安机关牵头，有关部门配合、群众广泛参与的打拐工作机制"),
         also=["SD-34"],
         notes="The 2013-generation plans give reporting duties (医护人员, 教师, 交通运输行业 …) "
               "without naming the recipient; the police, who lead the 打拐 mechanism in both, "
               "receive the reports. The recipient is an inference."),
    rule("SD-01", "reporting_mechanism", refs=[], source=src("YY-01"), also=["SD-01"],
         lead=["comprehensive_governance_office"],
         cooperating=["education", "police", "civil_affairs", "health", "justice"]),
    rule("SD-02", "medical_staff_report", refs=[], also=["YY-04"], source=src("YY-04"),
         ref_constraints=False,
         constraints=["Never issue a false birth (medical) certificate "
                      "(严禁为被拐卖儿童出具虚假出生证明 / 严禁出具虚假出生医学证明)."]),
    rule("SD-03", "teacher_report", refs=[], cooperating=["justice"], source=src("YY-05"),
         also=["SD-03"]),
    rule("YY-06", "missing_child_rapid_search", refs=[], all=[], inferred=True,
         notes="Shown by 云阳 only in this generation (山东 has no rapid-search clause); kept "
               "here because the mechanism is the national one and every 2021-generation plan "
               "repeats it."),
    rule("YY-08", "missing_child_parents_dna", refs=[], all=[],
         cooperating=["education", "health", "womens_federation"], also=["SD-06"]),
    rule("YY-09", "unknown_origin_child_dna", refs=[],
         cooperating=["education", "health", "womens_federation"], also=["SD-06"]),
    rule("YY-07", "child_case_one_chief", refs=[], inferred=True,
         notes="Shown by 云阳 only in this generation; kept as in missing_child_rapid_search."),
    rule("SD-08", "rescued_child_no_parents", refs=[], all=[], source=src("YY-11"),
         lead=["police"], cooperating=["civil_affairs"], also=["SD-08"]),
    rule("SD-09", "forced_exploitation_victims", refs=[],
         kind=["forced_begging_or_forced_crime_found", "forced_labour_found"],
         source=src("YY-12"), also=["SD-09"]),
    rule("SD-13", "coerced_victim_offence", refs=[], all=[C("person.coerced")],
         source=src("YY-14"), also=["SD-13"],
         notes="Common to both: victims who were coerced (云阳 adds the deceived)."),
    rule("SD-10", "prosecution_decision", refs=[], source=src("YY-36"), also=["SD-10"]),
    rule("SD-14", "illegal_foreigners", refs=[], source=src("YY-16"),
         cooperating=["hr_social_security", "civil_affairs"], also=["SD-14"]),
    rule("SD-15", "cross_region_assistance", refs=[], source=src("YY-17"), also=["SD-15"]),
    rule("SD-16", "victim_assistance", refs=[], kind=["rescued_victim_needs_assistance"],
         cooperating=["police", "finance", "development_reform", "health", "education"],
         source=src("YY-19"), also=["SD-16"], urgency="unspecified"),
    rule("SD-16", "wandering_minor_rescue", refs=[], kind=["wandering_or_begging_minor_found"],
         cooperating=["police", "finance", "health", "education", "hr_social_security",
                      "youth_league", "womens_federation"],
         source=src("YY-15"), also=["SD-16"],
         action="Rescue and place the wandering minor (and minors forced to beg or commit "
                "crime) through the relief and welfare institutions, with social-work services."),
    rule("SD-16", "abandoned_infant_placement", refs=[], kind=["abandoned_infant_found"],
         cooperating=["police", "finance", "health", "education", "hr_social_security",
                      "youth_league", "womens_federation"],
         source=src("YY-15"), also=["SD-16"],
         action="Receive and place the abandoned infant through the relief and welfare "
                "institutions."),
    rule("SD-17", "victim_medical_care", refs=[], source=src("YY-21"), also=["SD-17"]),
    rule("SD-18", "victim_legal_aid", refs=[], all=[], constraints=[ELIGIBLE],
         cooperating=["police", "civil_affairs", "youth_league", "womens_federation"],
         source=src("YY-22"), also=["SD-18"]),
    rule("SD-21", "rescued_child_schooling", refs=[], all=[], source=src("YY-23"),
         also=["SD-21"]),
    rule("YY-24", "victim_job_training", refs=[], all=[AGE16, CANNOT_RETURN], also=["SD-22"]),
    rule("YY-25", "victim_return_home", refs=[], all=[], also=["SD-23"]),
    rule("SD-24", "reintegration_services", refs=[], all=[], source=src("YY-26"),
         also=["SD-24"]),
    rule("SD-26", "pregnancy_followup", refs=[], source=src("YY-28"), also=["SD-26"],
         lead=["health"], cooperating=["police"]),
    rule("SD-27", "illegal_employment", refs=[], source=src("YY-30"), also=["SD-27"],
         cooperating=["industry_commerce", "trade_union", "youth_league", "womens_federation",
                      "disabled_persons_federation"]),
    rule("SD-28", "dropout_control", refs=[], source=src("YY-29"), also=["SD-28"]),
    rule("SD-29", "marriage_adoption_channels", refs=[], source=src("YY-32"), also=["SD-29"]),
    rule("SD-30", "rescued_woman_employment", refs=[], all=[],
         cooperating=["youth_league", "womens_federation"],
         source=S(YY, "三、(一)2.(2)——8", "解救的被拐卖妇女创业就业"), also=["SD-30"]),
    rule("SD-31", "buyer_market", refs=[], source=src("YY-39"), also=["SD-31"],
         cooperating=["education", "civil_affairs", "hr_social_security", "justice", "health",
                      "womens_federation"]),
    rule("SD-34", "strike_campaign_mechanism", refs=[], source=src("YY-35"), also=["SD-34"],
         cooperating=["court", "procuratorate", "civil_affairs", "hr_social_security", "health",
                      "womens_federation"]),
    rule("YY-38", "victim_privacy", refs=[], also=["SD-33"]),
]


def keys_of(rules: list[dict[str, Any]]) -> set[str]:
    return {r["key"] for r in rules}


K21, K13 = keys_of(N21), keys_of(N13)


def child(parent_keys: set[str], ref: str | None, key: str, **kw: Any) -> dict[str, Any]:
    if key in parent_keys:
        kw["override"] = True
    return rule(ref, key, **kw)


# --------------------------------------------------------------------------------- xx_city

def x(ref: str | None, key: str, **kw: Any) -> dict[str, Any]:
    return child(K21, ref, key, **kw)


XX_RULES = [
    x("XX-01", "refer_suspected_trafficking", all=[],
      kind=[REF["XX-01"]["trigger"]["event"], *REF["XX-01"]["trigger"]["also_events"]]),
    x("XX-02", "missing_child_rapid_search", all=[]),
    x("XX-03", "missing_child_info_release", all=[]),
    x("XX-04", "child_case_one_chief"),
    x("XX-05", "unknown_origin_child_dna", all=[], cooperating=[],
      notes="The text's partners are 相关部门 (unnamed): not routed."),
    x("XX-06", "hukou_child_dna", all=[C("person.origin_unknown", "eq", True, "match")]),
    x("XX-07", "rescued_child_no_parents", all=[]),
    x("XX-08", "rescued_child_return_parents", all=[]),
    x("XX-09", "victim_interview",
      constraints=["One-stop interview with the procuratorate; avoid secondary harm to the "
                   "victim (避免被拐卖受害人受到二次伤害)."]),
    x("XX-10", "transport_worker_report", all=[], lead=["police"], cooperating=["transport"],
      action="Receive the report of a transport worker who stopped suspected trafficking or "
             "sexual abuse of a minor, and handle it; the transport department supports."),
    x("XX-11", "entertainment_venue_clues", lead=["police"], cooperating=["culture_tourism"],
      action="Receive the situation report and clues the culture-and-tourism inspectors hand "
             "over (paid escort, prostitution) and handle them."),
    x("XX-12", "medical_mandatory_report", all=[CHILD],
      action="Guide and supervise the medical institution and its staff in the mandatory "
             "report of harm to a minor (强制报告); the report itself goes to the police."),
    x("XX-13", "wf_unknown_origin_report",
      lead=["grassroots_government", "village_residents_committee"],
      cooperating=["womens_federation"],
      action="Receive the women's federation's report of women or children of unknown origin, "
             "or of families at risk of trafficking, and act on it."),
    x("XX-14", "dropout_list_exchange"),
    x("XX-15", "rescued_child_schooling", all=[]),
    x("XX-16", "online_platform_enforcement"),
    x("XX-17", "online_trafficking_crackdown", urgency="prompt",
      notes="定期清理 is the standing duty; for one piece of information the clause's "
            "及时发现犯罪线索 applies, hence prompt."),
    x("XX-18", "online_info_tracing"),
    x("XX-19", "disabled_persons_exploitation",
      kind=["forced_begging_or_forced_crime_found", "illegal_employment_child_labour_found"],
      all=[C("person.disability", "not_in", ["none", "unknown"])], lead=[],
      candidate_lead=["police", "hr_social_security"], inferred=True,
      notes="The lead is 相关部门 (unnamed): triage with candidate leads (police for forced "
            "begging, HR for illegal employment)."),
    x("XX-20", "wandering_minor_rescue"),
    x("XX-21", "forced_labour_union"),
    x("XX-22", "fake_paternity_test"),
    x("XX-23", "guardian_failing_duty", all=[]),
    x("XX-24", "state_judicial_aid", all=[], constraints=[ELIGIBLE]),
    x("XX-25", "victim_registration"),
    x("XX-26", "victim_find_relatives", all=[],
      kind=["rescued_victim_identity_unknown", "rescued_child_parents_not_found"]),
    x("XX-27", "smart_family_search",
      kind=["rescued_victim_identity_unknown", "rescued_child_parents_not_found"],
      notes="Standing duty of 国资委 to support smart family-tracing tools; not sent for every "
            "missing-child report (the reference also lists child_missing_reported)."),
    x("XX-28", "victim_assistance"),
    x("XX-29", "victim_medical_care"),
    x("XX-30", "victim_legal_aid", cooperating=["womens_federation"], refs=["XX-30", "XX-35"],
      also=["XX-35"]),
    x("XX-31", "victim_job_training", all=[AGE16, C("person.willing_to_train")],
      constraints=[ELIGIBLE]),
    x("XX-32", "rescued_woman_employment", all=[]),
    x("XX-33", "forced_labour_victim_legal_aid", all=[]),
    x("XX-34", "rescued_minor_care_referral", all=[]),
    x("XX-35", "victim_rights_services", kind=["rescued_victim_rights_services"], lead=[],
      candidate_lead=["civil_affairs", "justice"], inferred=True,
      notes="Women's federation cooperates with 相关部门 (unnamed); candidate leads inferred."),
    x("XX-36", "disability_assessment", all=[]),
    x("XX-37", "disabled_child_rehabilitation", all=[]),
    x("XX-38", "foreign_victim_stay", all=[FEMALE]),
    x("XX-39", "foreign_victim_return", all=[], inherit=["lead"], cooperating=["immigration"],
      notes="Immigration cooperates with 有关部门 (unnamed): the lead is inherited from "
            "national_2021 (police)."),
    x("XX-40", "chinese_victim_abroad", all=[]),
    x("XX-41", "trafficking_petition"),
    x("XX-42", "illegal_foreigners", all=[]),
    x("XX-43", "volunteer_org_misconduct"),
    x("XX-44", "victim_privacy"),
    x("XX-45", "case_publicity"),
    x("XX-46", "cross_region_case"),
    x("XX-47", "major_serial_case"),
    x("XX-48", "buyer_market"),
    x("XX-49", "minors_protection_coordination"),
    x(None, "prosecution_decision", inherit=["when", "lead", "cooperating", "action", "urgency"],
      source=S(XX, "第五十一条", "法院、检察院、公安机关应当加强沟通配合")),
    x(None, "informant_reward", inherit=["when", "lead", "cooperating", "action", "urgency"],
      source=S(XX, "第七十七条", "公安机关要完善公民举报奖励制度")),
]

# ------------------------------------------------------------------------------------ xian

def a(ref: str | None, key: str, **kw: Any) -> dict[str, Any]:
    return child(K21, ref, key, **kw)


XA_RULES = [
    a("XA-01", "missing_child_info_release", all=[]),
    a("XA-02", "missing_child_rapid_search", inherit=["when", "lead", "action", "urgency"],
      cooperating=[]),
    a("XA-03", "child_case_one_chief"),
    a("XA-04", "abandoned_infant_dna"),
    a("XA-05", "vulnerable_minor_assistance", kind=["abandoned_infant_found"]),
    a("XA-06", "wandering_minor_rescue"),
    a("XA-07", "poor_victim_assistance", all=[]),
    a("XA-08", "unknown_origin_child_dna", cooperating=[]),
    a("XA-09", "missing_child_case_verification"),
    a("XA-10", "informant_reward"),
    a("XA-11", "transport_worker_report", all=[], any=[FEMALE, CHILD], lead=["police"],
      cooperating=["transport"],
      action="Receive the transport department's report of suspected trafficking of women or "
             "children on public transport and stop it together (配合制止)."),
    a("XA-12", "transport_hubs_cooperate",
      kind=["transport_hub_suspected_trafficking", "transport_worker_suspects_trafficking"]),
    a("XA-13", "transport_interdiction"),
    a("XA-14", "entertainment_venue_clues", cooperating=[],
      notes="The partners (有关部门, for re-educating women in prostitution) are unnamed."),
    a("XA-15", "forced_begging_crackdown"),
    a("XA-16", "organ_trafficking"),
    a("XA-17", "online_trafficking_crackdown"),
    a("XA-18", "online_platform_screening"),
    a("XA-19", "online_illegal_adoption"),
    a("XA-20", "foreign_victim_return", all=[], cooperating=[],
      kind=["foreign_victim_wishes_to_return"]),
    a("XA-20", "illegal_foreigners", all=[], kind=["illegal_foreigner_found"],
      action="Clear up illegal entry, stay and employment of foreigners (加大清查力度).",
      source=S(XA, "第十条", "加大对非法入境、非法居留、非法就业境外人员的清查力度")),
    a("XA-20", "chinese_victim_abroad", all=[], kind=["chinese_victim_trafficked_abroad"],
      cooperating=[], action="Receive (接收) the rescued Chinese victim brought back from abroad."),
    a("XA-21", "fraudulent_intermediary_ad", cooperating=[]),
    a("XA-22", "illegal_employment"),
    a("XA-23", "victim_registration"),
    a("XA-24", "victim_cannot_return_promptly", all=[]),
    a("XA-25", "victim_assistance", all=[]),
    a("XA-25", "victim_return_home", kind=["rescued_victim_return_home"],
      source=S(XA, "第六条 para 5", "做好被拐卖受害人的返乡工作"),
      action="Arrange the rescued victim's return home and help with practical living "
             "problems, so the return to family, school and society succeeds."),
    a("XA-25", "rescued_child_schooling", kind=["rescued_child_needs_schooling"],
      cooperating=["education"], inferred=True,
      source=S(XA, "第六条 para 5", "帮助其解决实际生活和入学困难"),
      also=[S(XA, "第六条 para 2", "教育、关工委等部门要保障所有适龄儿童特别是进城务工人员子女平等接受义务教育的权利")],
      action="Help the rescued child over the difficulties of enrolling in school.",
      notes="西安 gives school-enrolment help to civil affairs (第六条 para 5); education's "
            "general duty (para 2) makes it the cooperating unit (inferred)."),
    a("XA-26", "victim_job_training", all=[AGE16, CANNOT_RETURN]),
    a("XA-27", "victim_medical_care"),
    a("XA-28", "victim_legal_aid", all=[], any=[FEMALE, CHILD]),
    a("XA-29", "rescued_woman_employment", all=[]),
    a("XA-30", "major_serial_case", cooperating=[]),
    a("XA-31", "prosecution_decision"),
    a("XA-32", "annual_report"),
    a("XA-33", "case_publicity"),
]

# -------------------------------------------------------------------------------- shandong

def s(ref: str | None, key: str, **kw: Any) -> dict[str, Any]:
    return child(K13, ref, key, **kw)


SD_SCOPE = {
    "description": "women and children (反对拐卖妇女儿童)",
    "any": [C("person.sex", "eq", "female", "match"), C("person.is_child", "eq", True, "match")],
    "source": S(SD, "一、", "依法严厉打击拐卖妇女儿童犯罪,及时解救被拐卖妇女儿童"),
}
SD_TRIAGE = {"agency": "anti_trafficking_office", "urgency": "prompt",
             "source": S(SD, "三、(一)", "省反拐联席会议办公室负责,各成员单位配合")}
SD_COMMON16 = dict(lead=["civil_affairs"],
                   cooperating=["police", "finance", "development_reform", "housing_urban_rural",
                                "health", "education", "hr_social_security", "youth_league",
                                "womens_federation"])

SD_RULES = [
    s("SD-01", "reporting_mechanism"),
    s("SD-02", "medical_staff_report", all=[]),
    s("SD-03", "teacher_report"),
    s("SD-04", "transport_worker_report",
      kind=["transport_worker_suspects_trafficking", "transport_hub_suspected_trafficking"]),
    s("SD-05", "unknown_origin_child_sweep"),
    s("SD-06", "unknown_origin_child_dna", kind=["child_of_unknown_origin_found"]),
    s("SD-06", "missing_child_parents_dna", kind=["child_missing_reported"]),
    s("SD-07", "birth_certificate_lookup"),
    s("SD-08", "rescued_child_no_parents", all=[]),
    s("SD-09", "forced_exploitation_victims",
      kind=["forced_begging_or_forced_crime_found", "forced_labour_found"]),
    s("SD-10", "prosecution_decision", refs=["SD-10", "SD-11"], also=["SD-11"]),
    s("SD-12", "sentencing"),
    s("SD-13", "coerced_victim_offence", all=[C("person.coerced")],
      notes="Women and minors (the pack scope) who were coerced (受胁迫)."),
    s("SD-14", "illegal_foreigners"),
    s("SD-15", "cross_region_assistance"),
    s("SD-16", "victim_assistance", kind=["rescued_victim_needs_assistance"], **SD_COMMON16),
    s("SD-16", "wandering_minor_rescue", kind=["wandering_or_begging_minor_found"], **SD_COMMON16),
    s("SD-16", "abandoned_infant_placement", kind=["abandoned_infant_found"], **SD_COMMON16),
    s("SD-17", "victim_medical_care"),
    s("SD-18", "victim_legal_aid", all=[], constraints=[ELIGIBLE]),
    s("SD-19", "ethnic_minority_victim", all=[]),
    s("SD-20", "consular_assistance", kind=["consular_assistance_needed"]),
    s("SD-20", "chinese_victim_abroad", kind=["chinese_victim_trafficked_abroad"]),
    s("SD-21", "rescued_child_schooling", all=[]),
    s("SD-22", "victim_job_training", all=[FEMALE, AGE16, CANNOT_RETURN]),
    s("SD-23", "victim_return_home", all=[FEMALE]),
    s("SD-24", "reintegration_services", all=[FEMALE]),
    s("SD-25", "temporary_guardianship"),
    s("SD-26", "pregnancy_followup"),
    s("SD-27", "illegal_employment"),
    s("SD-28", "dropout_control"),
    s("SD-29", "marriage_adoption_channels"),
    s("SD-30", "rescued_woman_employment", all=[]),
    s("SD-31", "buyer_market"),
    s("SD-32", "major_serial_case"),
    s("SD-33", "victim_privacy"),
    s("SD-34", "strike_campaign_mechanism"),
]

# ---------------------------------------------------------------------------------- honghe

def h(ref: str, key: str, **kw: Any) -> dict[str, Any]:
    """红河 names no unit: an override inherits the lead; a new key goes to triage."""
    if key in K21:
        kw.setdefault("inherit", ["when", "lead", "cooperating", "action", "urgency"])
        kw["inherit"] = [i for i in kw["inherit"] if i not in kw or i == "when"]
    return child(K21, ref, key, **kw)


_INH = ["when", "lead", "cooperating", "action", "urgency"]
HH_RULES = [
    h("HH-01", "missing_child_rapid_search", source=S(HH, "三、二是", "快速查找"),
      urgency="immediate", inherit=["when", "lead", "cooperating", "action"]),
    h("HH-01", "unknown_origin_child_dna", source=S(HH, "三、二是", "基础摸排")),
    h("HH-01", "missing_child_info_release", source=S(HH, "三、二是", "信息发布")),
    h("HH-02", "child_case_one_chief"),
    h("HH-03", "online_trafficking_crackdown"),
    h("HH-04", "victim_assistance", source=S(HH, "三、三是", "临时性帮扶救助")),
    h("HH-04", "victim_medical_care", source=S(HH, "三、三是", "医疗")),
    h("HH-04", "rescued_child_no_parents", source=S(HH, "三、三是", "寻亲")),
    h("HH-04", "victim_find_relatives", source=S(HH, "三、三是", "寻亲")),
    h("HH-04", "hukou_child_dna", source=S(HH, "三、三是", "落户")),
    h("HH-04", "disability_assessment", source=S(HH, "三、三是", "康复")),
    h("HH-05", "reintegration_services", kind=["rescued_victim_reintegration_services"],
      lead=[], cooperating=[]),
    h("HH-05", "rescued_child_schooling", source=S(HH, "三、三是", "回归学校")),
    h("HH-05", "victim_job_training", source=S(HH, "三、三是", "技能培训和就业帮助")),
    h("HH-05", "victim_return_home", source=S(HH, "三、三是", "回归家庭和社区")),
    h("HH-05", "victim_legal_aid", source=S(HH, "三、三是", "法律援助")),
    h("HH-06", "foreign_victim_return", source=S(HH, "三、五是", "被害人送返")),
    h("HH-06", "foreign_victim_stay", source=S(HH, "三、五是", "被害人送返"), inferred=True,
      notes="红河 names cross-border cooperation only; the stay-in-marriage duty is inherited."),
    h("HH-06", "illegal_foreigners", kind=["illegal_foreigner_found"], lead=[], cooperating=[],
      source=S(HH, "三、五是", "执法交流、警务合作")),
    h("HH-07", "prevention_focus", kind=["prevention_focus"], lead=[], cooperating=[]),
    h("HH-07", "entertainment_venue_clues",
      source=S(HH, "三、一是", "重点场所(娱乐场所、教育教学机构、网络空间)")),
    h("HH-07", "abandoned_infant", kind=["abandoned_infant_found"], lead=[], cooperating=[],
      candidate_lead=["police", "civil_affairs"], inferred=True,
      source=S(HH, "三、一是", "重点人群(流浪未成年人、弃婴、收养儿童"),
      notes="Named only as a key group; candidate leads inferred from the other plans."),
    h("HH-07", "wandering_minor_rescue",
      source=S(HH, "三、一是", "重点人群(流浪未成年人、弃婴、收养儿童")),
    h("HH-08", "annual_report"),
    h("HH-09", "accountability", lead=[], cooperating=[]),
]

# --------------------------------------------------------------------------------- yunyang

def y(ref: str | None, key: str, **kw: Any) -> dict[str, Any]:
    return child(K13, ref, key, **kw)


YY_RULES = [
    y("YY-01", "reporting_mechanism"),
    y("YY-02", "prostitution_crackdown"),
    y("YY-03", "staff_report_mobilisation",
      kind=["hotel_or_venue_staff_suspects_trafficking", "transport_worker_suspects_trafficking",
            "entertainment_venue_prostitution_signs"]),
    y("YY-04", "medical_staff_report"),
    y("YY-05", "teacher_report"),
    y("YY-06", "missing_child_rapid_search", all=[]),
    y("YY-07", "child_case_one_chief"),
    y("YY-08", "missing_child_parents_dna", all=[]),
    y("YY-09", "unknown_origin_child_dna"),
    y("YY-10", "hukou_child_dna",
      any=[C("person.origin_unknown", "eq", True, "match"), C("person.adopted")]),
    y("YY-11", "rescued_child_no_parents", all=[]),
    y("YY-12", "forced_exploitation_victims",
      kind=["forced_begging_or_forced_crime_found", "forced_labour_found"]),
    y("YY-13", "organ_trafficking"),
    y("YY-14", "coerced_victim_offence", all=[],
      any=[C("person.coerced"), C("details.deceived")],
      notes="Any victim who was coerced or deceived (受欺骗或被胁迫); deception is "
            "details.deceived."),
    y("YY-15", "wandering_minor_rescue"),
    y("YY-15", "abandoned_infant_placement", kind=["abandoned_infant_found"],
      action="Receive and place the abandoned infant through the relief and welfare "
             "institutions."),
    y("YY-16", "illegal_foreigners"),
    y("YY-17", "cross_region_assistance"),
    y("YY-18", "no_parents_placement_policy"),
    y("YY-19", "victim_assistance"),
    y("YY-20", "victim_social_work_services"),
    y("YY-21", "victim_medical_care"),
    y("YY-22", "victim_legal_aid", all=[], constraints=[ELIGIBLE]),
    y("YY-23", "rescued_child_schooling", all=[]),
    y("YY-24", "victim_job_training", all=[AGE16, CANNOT_RETURN]),
    y("YY-25", "victim_return_home", all=[]),
    y("YY-26", "reintegration_services"),
    y("YY-27", "victim_registration"),
    y("YY-28", "pregnancy_followup"),
    y("YY-29", "dropout_control"),
    y("YY-30", "illegal_employment"),
    y("YY-31", "high_sex_ratio_area"),
    y("YY-32", "marriage_adoption_channels"),
    y("YY-33", "informant_reward"),
    y("YY-34", "dna_database_sharing"),
    y("YY-35", "strike_campaign_mechanism"),
    y("YY-36", "prosecution_decision"),
    y("YY-37", "cross_province_cooperation"),
    y("YY-38", "victim_privacy"),
    y("YY-39", "buyer_market"),
    y(None, "rescued_woman_employment", kind=["rescued_woman_employment"],
      lead=["hr_social_security"], cooperating=["youth_league", "womens_federation"],
      urgency="unspecified",
      action="Help rescued trafficked women into employment or their own business "
             "(practical-skills and job training).",
      source=S(YY, "三、(一)2.(2)——8", "解救的被拐卖妇女创业就业"),
      notes="Missing from the reference extraction (the counterpart of SD-30)."),
]


# ---------------------------------------------------------------------------------- output

HEADER = """\
# Rule pack: {title}
# Generated by tools/build_packs.py from the reference extraction after review against the
# seed text; edit by hand from now on. Format and semantics: rules/model.py, rules/engine.py;
# rules/packs/xian.yaml is the commented example.
"""


def pack(code: str, parent: str | None, title: str, rules: list[dict[str, Any]], *,
         seed: str | None = None, scope: Any = None, triage: Any = None,
         constraints: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"jurisdiction": code, "parent": parent, "title": title}
    if seed:
        out["seed"] = seed
    out["generation_common"] = seed is None
    if scope:
        out["scope"] = scope
    if triage:
        out["triage"] = triage
    if constraints:
        out["constraints"] = constraints
    out["rules"] = rules
    return out


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # shared condition dicts: no &id001 anchors
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str)


def write(p: dict[str, Any]) -> None:
    text = yaml.dump(p, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    # A blank line between rules reads better.
    text = text.replace("\n- key:", "\n\n- key:")
    (OUT / f"{p['jurisdiction']}.yaml").write_text(
        HEADER.format(title=p["title"]) + text, encoding="utf-8")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    packs = [
        pack("national_2021", None, "中国反对拐卖人口行动计划(2021—2030年): common to the "
             "2021-generation seeds (XX市, 西安市, 红河州)", N21, triage=TRIAGE_2021,
             constraints=[PRIVACY_2021]),
        pack("national_2013", None, "中国反对拐卖人口行动计划(2013—2020年): common to the "
             "2013-generation seeds (山东省, 云阳县)", N13, triage=TRIAGE_2013,
             constraints=[PRIVACY_2013]),
        pack("shaanxi", "national_2021", "陕西省实施细则 (not in the seeds: no duty of its own "
             "is known; 西安 inherits national_2021 through it)", []),
        pack("yunnan", "national_2021", "云南省实施细则 (云政办发〔2021〕50号, not in the seeds: "
             "no duty of its own is known)", []),
        pack("chongqing", "national_2013", "重庆市意见 (渝府办发〔2013〕155号, not in the seeds: "
             "no duty of its own is known)", []),
        pack("xx_city", "national_2021", "XX市贯彻中国反对拐卖人口行动计划实施细则", XX_RULES,
             seed=XX),
        pack("shandong", "national_2013", "山东省反对拐卖妇女儿童行动计划(2015—2020年)",
             SD_RULES, seed=SD, scope=SD_SCOPE, triage=SD_TRIAGE),
        pack("honghe", "yunnan", "红河州反对拐卖人口行动计划实施方案(2021—2030年) 政策解读",
             HH_RULES, seed=HH),
        pack("yunyang", "chongqing", "云阳县贯彻落实中国反对拐卖人口行动计划(2013—2020年)的实施意见",
             YY_RULES, seed=YY),
    ]
    if WRITE_XIAN:
        packs.append(pack("xian", "shaanxi", "西安市贯彻落实《中国反对拐卖人口行动计划"
                          "(2021—2030年)》实施细则", XA_RULES, seed=XA))
    for p in packs:
        write(p)
    covered = {i for p in packs for r in p["rules"] for i in r.get("ref", [])}
    covered |= {i for p in packs for c in p.get("constraints", []) for i in c.get("ref", [])}
    missing = sorted(r["id"] for r in REF.values() if r["id"] not in covered)
    print(f"wrote {len(packs)} packs; reference rules not covered: {missing or 'none'}")


if __name__ == "__main__":
    main()
