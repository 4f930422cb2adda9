"""The rule registries: how they are composed, how a decision is made, and that every rule of
every frontend has a negative test."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from fold.core.kinds import KERAS_KINDS
from fold.core.rules import RULES, SEMANTIC, STRUCTURAL, Candidate, Rule, compose, decide
from fold.frontends.formats import FRONTENDS
from tests.helpers import FRONTEND_NAMES

TESTS = Path(__file__).parent


def test_registry_names_are_unique_and_documented():
    for fmt in FRONTENDS.values():
        rules = fmt.frontend().rules
        names = [r.name for r in rules]
        assert len(names) == len(set(names)), fmt.name
        assert all(r.summary for r in rules), fmt.name


def test_compose_puts_a_frontends_guards_between_the_shared_rules():
    guard = Rule("own-guard", "A frontend's own check.", lambda c: None)
    rules = compose(guard)
    assert rules == (*STRUCTURAL, guard, *SEMANTIC)
    assert [r.name for r in compose(guard, omit=("not-shared",))].count("not-shared") == 0
    with pytest.raises(ValueError, match="unique"):
        compose(Rule("supported-kind", "a copy", lambda c: None))
    with pytest.raises(ValueError, match="shared rules"):
        compose(omit=("own-guard",))


def test_first_objection_decides():
    c = Candidate(layer="c", bn="bn", op="Conv2D", kind=KERAS_KINDS["Conv2D"], activation="relu",
                  consumers=3, channel_axis=3, bn_axes=(3,), mean=np.zeros(2), variance=np.ones(2))
    assert decide(c, RULES).rule == "linear-activation"
    c.activation = None
    assert decide(c, RULES).rule == "single-consumer"
    c.consumers = 1
    d = decide(c, RULES)
    assert d.status == "folded" and d.affine is not None


def test_a_folded_pair_keeps_the_candidates_notes_and_a_skipped_one_clears_them():
    c = Candidate(layer="c", bn="bn", op="Conv2D", kind=KERAS_KINDS["Conv2D"], channel_axis=3, bn_axes=(3,),
                  mean=np.zeros(2), variance=np.ones(2), notes={"activation": "RELU fused into 'c'"})
    assert decide(c).to_dict()["activation"] == "RELU fused into 'c'"
    c.consumers = 2
    assert decide(c).to_dict()["activation"] is None


def test_set_scale_shift_makes_the_affine_map_exactly_scale_and_shift():
    c = Candidate(layer="c", bn="bn", op="Conv2D", kind=KERAS_KINDS["Conv2D"], channels=3)
    c.set_scale_shift(np.array([2.0, -0.5, 3.0]), None)
    affine = c.affine()
    np.testing.assert_array_equal(affine.scale, [2.0, -0.5, 3.0])
    np.testing.assert_array_equal(affine.shift, [0.0, 0.0, 0.0])


def _negative_tests() -> dict[str, set[str]]:
    """format -> the rules its ``test_*_NEG`` functions pass to ``assert_skipped`` as literals."""
    found: dict[str, set[str]] = {name: set() for name in FRONTEND_NAMES.values()}
    for path in TESTS.glob("test_*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not (isinstance(func, ast.FunctionDef) and func.name.endswith("_NEG")):
                continue
            calls = [n for n in ast.walk(func) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "assert_skipped"]
            assert calls, f"{path.name}::{func.name} is a negative test that never calls assert_skipped"
            for call in calls:
                frontend, rule = call.args[0], call.args[2]
                assert isinstance(frontend, ast.Name) and frontend.id in FRONTEND_NAMES, f"{path.name}::{func.name}"
                assert isinstance(rule, ast.Constant), f"{path.name}::{func.name}: name the rule as a literal"
                found[FRONTEND_NAMES[frontend.id]].add(rule.value)
    return found


def test_every_rule_of_every_frontend_has_a_negative_test():
    tested = _negative_tests()
    for fmt in FRONTENDS.values():
        rules = {r.name for r in fmt.frontend().rules}
        assert fmt.name in tested, f"no negative tests name the {fmt.name} frontend"
        missing = sorted(rules - tested[fmt.name])
        assert not missing, f"{fmt.name}: rules without a negative test: {missing}"
        unknown = sorted(tested[fmt.name] - rules)
        assert not unknown, f"{fmt.name}: negative tests name rules it does not have: {unknown}"


def test_negative_tests_follow_one_naming_convention():
    for path in TESTS.glob("test_*.py"):
        tree = ast.parse(path.read_text())
        names = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name.startswith("test_")]
        assert not [n for n in names if n.lower().endswith("_neg") and not n.endswith("_NEG")], path.name
