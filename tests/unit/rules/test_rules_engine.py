"""Inheritance semantics of the compiled rule book, on small synthetic packs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from rules.deadlines import Deadlines
from rules.engine import (
    RuleBook,
    compile_packs,
    explain,
    is_triage,
    is_unrouted,
    load_packs,
    route,
    route_written,
)
from rules.explain import render_explanation
from schemas.referrals import referral_id_for

XX = "000_7dbaf2c26904eceb.txt"
SD = "002_91d53b139879ca8f.txt"


def src(file: str = XX, clause: str = "第一条") -> dict[str, str]:
    return {"file": file, "clause": clause, "quote": "反拐工作"}


N21 = {
    "jurisdiction": "national_2021", "parent": None, "generation_common": True,
    "triage": {"source": src(clause="第九条")},
    "constraints": [{"id": "privacy", "text": "privacy!", "kinds": ["rescued_*"],
                     "source": src()}],
    "rules": [
        {"key": "training", "when": {"kind": "rescued_victim_job_training",
                                     "all": [{"field": "person.age", "op": "ge", "value": 16}]},
         "lead": ["hr_social_security"], "action": "train", "action_zh": "职业培训",
         "urgency": "immediate", "constraints": ["parent constraint"], "source": src(),
         "names": {"hr_social_security": "人力资源社会保障部门"}},
        {"key": "remapped", "when": {"kind": "pregnancy_followup_info"},
         "lead": ["population_family_planning"], "cooperating": ["comprehensive_governance_office"],
         "action": "follow up", "action_zh": "孕情管理", "urgency": "unspecified", "source": src(),
         "names": {"population_family_planning": "人口计生委", "comprehensive_governance_office": "综治办"}},
        {"key": "nolead", "when": {"kind": "prevention_focus"}, "lead": [],
         "candidate_lead": ["police", "civil_affairs"], "cooperating": ["womens_federation"],
         "action": "prevent", "action_zh": "配合相关部门", "urgency": "unspecified", "source": src(),
         "names": {"womens_federation": "妇联"}},
        # One event, two rules naming health: it leads one, so it is not also a partner.
        {"key": "asks_health", "when": {"kind": "birth_certificate_verification_request"},
         "lead": ["police"], "cooperating": ["health"], "action": "look up",
         "action_zh": "查询", "urgency": "unspecified", "source": src(),
         "names": {"police": "公安机关", "health": "卫生健康部门"}},
        {"key": "health_leads", "when": {"kind": "birth_certificate_verification_request"},
         "lead": ["health"], "action": "compare", "action_zh": "比对", "urgency": "unspecified",
         "source": src(), "names": {"health": "卫生健康部门"}},
        # A partner of an unnamed department (配合相关部门) cooperates with the event's leads.
        {"key": "partner_only", "when": {"kind": "fake_paternity_test_found"}, "lead": [],
         "candidate_lead": ["justice"], "cooperating": ["womens_federation"], "action": "help",
         "action_zh": "配合相关部门", "urgency": "unspecified", "source": src(),
         "names": {"womens_federation": "妇联"}},
        {"key": "named_lead", "when": {"kind": "fake_paternity_test_found"}, "lead": ["justice"],
         "action": "punish", "action_zh": "依法查处", "urgency": "unspecified", "source": src(),
         "names": {"justice": "司法行政部门"}},
        # For a girl, education leads too: the partner above then cooperates with both.
        {"key": "girls_schooling", "when": {"kind": "fake_paternity_test_found",
                                            "all": [{"field": "person.sex", "value": "female"}]},
         "lead": ["education"], "action": "school", "action_zh": "保障入学", "urgency": "unspecified",
         "source": src(), "names": {"education": "教育部门"}},
        # The plan in force after 2020 for a 2013-generation dropout.
        {"key": "school", "when": {"kind": "school_dropout_control"}, "lead": ["education"],
         "action": "keep in school", "action_zh": "控辍保学", "urgency": "unspecified",
         "source": src(clause="第二十一条"), "names": {"education": "教育部门"}},
    ],
}
XXC: dict[str, Any] = {
    "jurisdiction": "xx_city", "parent": "national_2021", "seed": XX,
    "rules": [
        {"key": "training", "override": True,
         "when": {"kind": "rescued_victim_job_training",
                  "all": [{"field": "person.age", "op": "ge", "value": 16},
                          {"field": "person.sex", "value": "female"}]},
         "lead": ["trade_union"], "urgency": "unspecified",
         "constraints": ["child constraint"], "source": src(clause="第六十三条"),
         "names": {"trade_union": "工会"}},
    ],
}
N13 = {
    "jurisdiction": "national_2013", "parent": None, "generation_common": True,
    "triage": {"source": src(clause="第九条")},
    "rules": [{"key": "labour", "when": {"kind": "forced_labour_found"}, "lead": ["police"],
               "action": "rescue", "action_zh": "解救", "urgency": "prompt", "source": src(),
               "names": {"police": "公安机关"}},
              {"key": "school", "when": {"kind": "school_dropout_control"},
               "lead": ["youth_league"], "action": "keep in school (2013)",
               "action_zh": "切实控制学生辍学", "urgency": "unspecified", "source": src(),
               "names": {"youth_league": "共青团"}}],
}
SDP = {
    "jurisdiction": "shandong", "parent": "national_2013", "seed": SD,
    "scope": {"description": "women and children", "source": src(SD, "一、"),
              "any": [{"field": "person.sex", "value": "female", "if_unknown": "match"},
                      {"field": "person.is_child", "value": True, "if_unknown": "match"}]},
    "rules": [{"key": "labour", "override": True, "lead": ["court"], "source": src(SD, "一、"),
               "names": {"court": "省法院"}}],
}


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> RuleBook:
    folder = tmp_path_factory.mktemp("packs")
    for p in (N21, XXC, N13, SDP):
        (folder / f"{p['jurisdiction']}.yaml").write_text(yaml.safe_dump(p, allow_unicode=True))
    return compile_packs(load_packs(folder))


def one(refs: list[Any], role: str = "lead") -> Any:
    found = [r for r in refs if r.role == role]
    assert len(found) == 1, refs
    return found[0]


def test_override_applies_to_the_events_it_covers(mini: RuleBook, event: Any) -> None:
    r = one(route(event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "female"}),
                  mini))
    assert (r.agency, r.decided_by, r.rule_id) == ("trade_union", "xx_city", "xx_city.training")
    assert r.citation.clause == "第六十三条"
    assert r.action == "train"  # inherited: the override left `action` out


def test_strictest_urgency_wins(mini: RuleBook, event: Any) -> None:
    r = one(route(event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "female"}),
                  mini))
    assert r.urgency == "immediate"  # the child said "unspecified", the parent "immediate"


def test_constraints_are_additive(mini: RuleBook, event: Any) -> None:
    r = one(route(event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "female"}),
                  mini))
    assert set(r.constraints) == {"parent constraint", "child constraint", "privacy!"}


def test_narrower_child_rule_falls_through_to_parent(mini: RuleBook, event: Any) -> None:
    r = one(route(event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "male"}),
                  mini))
    assert (r.agency, r.decided_by, r.rule_id) == (
        "hr_social_security", "national_2021", "national_2021.training")
    assert "child constraint" not in r.constraints


def test_unknown_value_does_not_match(mini: RuleBook, event: Any) -> None:
    refs = route(event("rescued_victim_job_training", "xx_city", {"sex": "female"}), mini)
    assert [r.rule_id for r in refs] == ["xx_city.unrouted"]


def test_uncovered_event_goes_to_triage(mini: RuleBook, event: Any) -> None:
    (r,) = route(event("rescued_victim_job_training", "xx_city", {"age": 15}), mini)
    assert (r.agency, r.role, r.rule_id, r.decided_by) == (
        "anti_trafficking_office", "lead", "xx_city.unrouted", "national_2021")
    assert r.citation.clause == "第九条" and r.action.startswith("Manual triage")
    assert is_unrouted(r) and is_triage(r)


def test_a_case_resolution_is_referred_to_no_agency_not_even_triage(book: RuleBook, event: Any) -> None:
    # The police's resolution closes the case and stops its pages (the alerts service reads it
    # from the inbound topic); a triage referral for each one would only be noise for the office.
    resolution = event("case_resolved", "xian")
    assert route(resolution, book) == []
    explained = explain(resolution, book)
    assert not explained.referrals and not explained.unrouted
    assert "acts on an open case" in render_explanation(explained)


def test_abolished_agencies_map_to_successors(mini: RuleBook, event: Any) -> None:
    refs = route(event("pregnancy_followup_info", "xx_city"), mini)
    assert [(r.role, r.agency) for r in refs] == [("lead", "health"),
                                                  ("cooperating", "political_legal_committee")]


def test_rule_without_lead_goes_to_triage_with_candidates(mini: RuleBook, event: Any) -> None:
    refs = route(event("prevention_focus", "xx_city"), mini)
    lead = one(refs)
    assert lead.agency == "anti_trafficking_office"
    assert lead.rule_id == "national_2021.nolead.triage"
    assert "police, civil_affairs" in lead.action
    assert is_triage(lead) and not is_unrouted(lead)
    assert one(refs, "cooperating").agency == "womens_federation"


def test_scope_filter_falls_through_to_parent(mini: RuleBook, event: Any) -> None:
    man = one(route(event("forced_labour_found", "shandong", {"age": 40, "sex": "male"}), mini))
    woman = one(route(event("forced_labour_found", "shandong", {"age": 40, "sex": "female"}), mini))
    boy = one(route(event("forced_labour_found", "shandong", {"age": 15, "sex": "male"}), mini))
    unknown = one(route(event("forced_labour_found", "shandong"), mini))
    assert (man.agency, man.decided_by) == ("police", "national_2013")
    assert (woman.agency, woman.decided_by) == ("court", "shandong")
    assert boy.agency == "court"
    assert unknown.agency == "court"  # doubtful cases stay in scope
    assert woman.urgency == "prompt"  # inherited


def test_expired_plan_still_routes_and_is_flagged(mini: RuleBook, event: Any) -> None:
    late = one(route(event("forced_labour_found", "shandong", {"sex": "female"}), mini))
    early = one(route(event("forced_labour_found", "shandong", {"sex": "female"},
                            occurred_at=dt.datetime(2016, 1, 1, tzinfo=dt.UTC)), mini))
    assert late.expired_plan and not early.expired_plan


def test_deadlines_from_urgency(mini: RuleBook, event: Any) -> None:
    ev = event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "female"})
    r = one(route(ev, mini))
    dl = Deadlines.load()
    assert r.ack_by == ev.reported_at + dt.timedelta(minutes=5)
    assert r.due_by == ev.reported_at + dl.for_level("immediate").due_within
    t = one(route(event("prevention_focus", "xx_city"), mini))
    assert t.ack_by == ev.reported_at + dt.timedelta(days=1) and t.due_by is None


def test_custom_deadlines_are_used(mini: RuleBook, event: Any) -> None:
    dl = Deadlines.load()
    levels = {k: v.model_copy(update={"ack_within": dt.timedelta(seconds=7)})
              for k, v in dl.deadlines.items()}
    custom = Deadlines(deadlines=levels)
    ev = event("forced_labour_found", "shandong")
    assert one(route(ev, mini, deadlines=custom)).ack_by == ev.reported_at + dt.timedelta(seconds=7)


def test_route_is_pure_and_deterministic(mini: RuleBook, event: Any) -> None:
    ev = event("prevention_focus", "xx_city", exercise=True,
               case_id="7d6f1d5e-8a38-4a43-9f7e-2d0c8a4c8d11")
    before = ev.model_dump()
    a, b = route(ev, mini), route(ev, mini)
    assert a == b and ev.model_dump() == before
    assert [r.role for r in a] == ["lead", "cooperating"]
    for r in a:
        assert r.referral_id == referral_id_for(ev.event_id, r.agency, r.rule_id, r.role)
        assert r.exercise and r.case_id == ev.case_id
        assert r.jurisdiction == "xx_city" and r.kind == "prevention_focus"


def test_index_is_by_jurisdiction_and_kind(mini: RuleBook) -> None:
    assert {k for (j, k) in mini.index if j == "xx_city"} == {
        "rescued_victim_job_training", "pregnancy_followup_info", "prevention_focus",
        "birth_certificate_verification_request", "fake_paternity_test_found",
        "school_dropout_control"}
    assert all(j in mini.chains for (j, _) in mini.index)  # jurisdictions only
    slots = mini.slots("xx_city", "rescued_victim_job_training")
    assert [[v.rule_id for v in s.variants] for s in slots] == [
        ["xx_city.training", "national_2021.training"]]
    assert mini.slots("xx_city", "forced_labour_found") == ()


def test_book_is_immutable(mini: RuleBook) -> None:
    with pytest.raises(TypeError):
        mini.index[("xx_city", "x")] = ()  # type: ignore[index]
    with pytest.raises(AttributeError):
        mini.rule_count = 0  # type: ignore[misc]


def test_explain_walks_the_chain(mini: RuleBook, event: Any) -> None:
    expl = explain(event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "female"}),
                   mini)
    assert [s.jurisdiction for s in expl.chain] == ["xx_city", "national_2021"]
    assert [(c.rule_id, c.outcome) for c in expl.rules] == [
        ("xx_city.training", "fired"), ("national_2021.training", "not_reached")]
    text = render_explanation(expl)
    assert "第六十三条" in text and "xx_city.training" in text


def test_explain_gives_the_failing_condition(mini: RuleBook, event: Any) -> None:
    expl = explain(event("rescued_victim_job_training", "xx_city", {"age": 20, "sex": "male"}),
                   mini)
    first = expl.rules[0]
    assert first.outcome == "no_match"
    assert "person.sex eq 'female' is no_match (event: 'male')" in first.reason
    assert expl.rules[1].outcome == "fired"


def test_explain_out_of_scope_and_unrouted(mini: RuleBook, event: Any) -> None:
    expl = explain(event("forced_labour_found", "shandong", {"age": 40, "sex": "male"}), mini)
    assert [c.outcome for c in expl.rules] == ["out_of_scope", "fired"]
    assert not expl.chain[0].in_scope and expl.chain[0].expired
    un = explain(event("rescued_victim_job_training", "xx_city", {"age": 3}), mini)
    assert un.unrouted and "manual triage" in render_explanation(un)


def test_real_book_loads_every_jurisdiction(book: RuleBook) -> None:
    from rules.catalog import catalog

    assert set(book.chains) == set(catalog().jurisdictions)
    assert book.chains["xian"] == ("xian", "shaanxi", "national_2021")
    assert book.chains["yunyang"] == ("yunyang", "chongqing", "national_2013")


def test_load_rulebook_is_cached(book: RuleBook) -> None:
    from rules.engine import load_rulebook

    assert load_rulebook() is book
    assert load_rulebook(Path(__file__).parents[3] / "rules" / "packs") is book


# ------------------------------------------------------------------ one role per agency and event


def test_a_lead_is_not_also_its_own_partner(mini: RuleBook, event: Any) -> None:
    refs = route(event("birth_certificate_verification_request", "xx_city"), mini)
    assert sorted((r.role, r.agency, r.rule_id) for r in refs) == [
        ("lead", "health", "national_2021.health_leads"),
        ("lead", "police", "national_2021.asks_health")]


def test_a_partner_of_an_unnamed_department_cooperates_with_the_events_leads(
        mini: RuleBook, event: Any) -> None:
    refs = route(event("fake_paternity_test_found", "xx_city"), mini)
    assert [(r.role, r.agency) for r in refs] == [("lead", "justice"),
                                                  ("cooperating", "womens_federation")]
    assert not any(is_triage(r) for r in refs)
    partner = one(refs, "cooperating")
    assert partner.action == "Cooperate with justice: help"
    assert partner.action_zh == "配合司法行政部门：配合相关部门"


def test_a_partner_names_each_events_own_leads(mini: RuleBook, event: Any) -> None:
    """The referrals a rule makes are built once per set of leads it cooperates with and shared by
    the events that have those leads: each event still gets its own."""
    for _ in range(2):  # the second time from what the first built
        boy = route(event("fake_paternity_test_found", "xx_city", {"sex": "male"}), mini)
        girl = route(event("fake_paternity_test_found", "xx_city", {"sex": "female"}), mini)
        assert one(boy, "cooperating").action == "Cooperate with justice: help"
        assert one(girl, "cooperating").action == "Cooperate with education, justice: help"
        assert one(girl, "cooperating").action_zh == "配合教育部门、司法行政部门：配合相关部门"
        assert [r.agency for r in girl if r.role == "lead"] == ["education", "justice"]
        assert one(boy, "cooperating").event_id != one(girl, "cooperating").event_id


def test_action_zh_is_carried_and_names_the_leads_for_partners(mini: RuleBook, event: Any) -> None:
    refs = route(event("pregnancy_followup_info", "xx_city"), mini)
    assert [r.action_zh for r in refs] == ["孕情管理", "配合卫生健康部门：孕情管理"]
    triage = one(route(event("prevention_focus", "xx_city"), mini))
    assert triage.action_zh.startswith("人工分派") and "公安机关、民政部门" in triage.action_zh


# ------------------------------------------------------------------ expired plans (guidance 7)


def test_expired_plan_defers_to_the_plan_in_force(mini: RuleBook, event: Any) -> None:
    late = one(route(event("school_dropout_control", "shandong"), mini))
    assert (late.agency, late.decided_by, late.expired_plan) == ("education", "national_2021", False)
    early = one(route(event("school_dropout_control", "shandong",
                            occurred_at=dt.datetime(2016, 1, 1, tzinfo=dt.UTC)), mini))
    assert (early.agency, early.decided_by, early.expired_plan) == (
        "youth_league", "national_2013", False)


def test_expired_plan_routes_where_the_plan_in_force_has_no_rule(mini: RuleBook, event: Any) -> None:
    r = one(route(event("forced_labour_found", "shandong", {"sex": "female"}), mini))
    assert (r.agency, r.decided_by, r.expired_plan) == ("court", "shandong", True)


def test_a_plan_routes_through_its_last_day_and_not_after(mini: RuleBook, event: Any) -> None:
    """shandong's and national_2013's plans run to 2020-12-31 inclusive: an event of that day is
    routed under them, unflagged; from the next day the plan in force routes it, or the expired
    plan does, flagged. The same in the router's messages (`route_written`)."""
    last_day = dt.datetime(2020, 12, 31, 23, 59, tzinfo=dt.UTC)
    next_day = dt.datetime(2021, 1, 1, 0, 0, tzinfo=dt.UTC)

    def routed(kind: str, person: dict[str, Any], at: dt.datetime) -> list[tuple[str, str, bool]]:
        e = event(kind, "shandong", person, occurred_at=at)
        by_model = [(r.agency, r.decided_by, r.expired_plan) for r in route(e, mini)]
        by_message = [(w.referral.agency, w.referral.decided_by, w.referral.expired_plan)
                      for w in route_written(e, mini)]
        assert by_message == by_model
        return by_model

    # A rule the plan in force lacks: the expired plan routes it, flagged only after its last day.
    assert routed("forced_labour_found", {"sex": "female"}, last_day) == [("court", "shandong", False)]
    assert routed("forced_labour_found", {"sex": "female"}, next_day) == [("court", "shandong", True)]
    # A rule the plan in force has: it takes over only after the last day.
    assert routed("school_dropout_control", {}, last_day) == [("youth_league", "national_2013", False)]
    assert routed("school_dropout_control", {}, next_day) == [("education", "national_2021", False)]


def test_plan_status_says_why(mini: RuleBook, event: Any) -> None:
    from rules.engine import plan_status

    ev = event("school_dropout_control", "shandong")
    status = plan_status(ev, route(ev, mini))
    assert status.expired_plans == ("shandong", "national_2013")
    assert status.deferred_to == "national_2021"
    assert status.note is not None and "ended on 2020-12-31" in status.note
    ev = event("forced_labour_found", "shandong", {"sex": "female"})
    status = plan_status(ev, route(ev, mini))
    assert status.deferred_to is None and "routed by the expired plan" in (status.note or "")
    ev = event("school_dropout_control", "xx_city")
    assert plan_status(ev, route(ev, mini)) == type(status)((), None, None)


def test_explain_keeps_the_expired_clause_as_context(mini: RuleBook, event: Any) -> None:
    expl = explain(event("school_dropout_control", "shandong"), mini)
    assert expl.routed_by_plan_in_force and expl.plan_in_force == ("national_2021",)
    assert [(c.rule_id, c.outcome) for c in expl.rules] == [("national_2021.school", "fired")]
    assert [(c.rule_id, c.outcome) for c in expl.context] == [("national_2013.school", "fired")]
    text = render_explanation(expl)
    assert "routed by the plan in force: national_2021" in text
    assert "expired plan, for context (not routed)" in text and "切实控制学生辍学" in text


# ------------------------------------------------------------------ the quote naming each unit


def test_explain_names_every_referred_unit_with_its_quote(mini: RuleBook, event: Any) -> None:
    expl = explain(event("pregnancy_followup_info", "xx_city"), mini)
    named = {r.agency: expl.naming(r) for r in expl.referrals}
    # Successors of abolished units are named by the quote naming the old unit.
    assert named["health"] is not None and named["health"].quote == "人口计生委"
    assert named["political_legal_committee"] is not None
    assert named["political_legal_committee"].quote == "综治办"
    assert "named in 000_7dbaf2c26904eceb.txt 第一条 「人口计生委」" in render_explanation(expl)


def test_a_unit_no_quote_names_fails_to_compile(tmp_path: Path) -> None:
    from rules.errors import PackError

    child = {**XXC, "rules": [{**XXC["rules"][0], "names": {}}]}
    for p in (N21, child):
        (tmp_path / f"{p['jurisdiction']}.yaml").write_text(yaml.safe_dump(p, allow_unicode=True))
    with pytest.raises(PackError) as exc:
        compile_packs(load_packs(tmp_path))
    assert exc.value.problems == [
        "xx_city.yaml: rule training: trade_union named by no quote in this rule or the versions "
        "it inherits from (add names)"]
