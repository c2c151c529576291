"""The shared ``--where`` matcher: parsing, dotted paths, typed and textual equality."""

from __future__ import annotations

import pytest

from experiments.model.selection import SelectionError, matches, parse_value, parse_where

PARAMS = {"lr": 0.1, "epochs": 10, "data": "squad", "flag": True, "seed": "1",
          "base.lr": 0.001, "opt": {"name": "adam", "betas": [0.9, 0.99]}, "none": None}


@pytest.mark.parametrize("where", [
    ["lr=0.1"], ["epochs=10"], ["epochs=10.0"], ["data=squad"], ['data="squad"'], ["flag=true"],
    ["seed=1"], ["base.lr=0.001"], ["base.lr=1e-3"], ["opt.name=adam"], ["opt.betas=[0.9,0.99]"],
    ["none=null"], ["lr=0.1", "data=squad"], {"lr": 0.1, "base.lr": 0.001},
])
def test_matches(where: list[str]) -> None:
    assert matches(PARAMS, parse_where(where))


@pytest.mark.parametrize("where", [
    ["lr=0.2"], ["flag=1"], ["epochs=true"], ["data=glue"], ["base.lr=0.1"], ["opt.name=sgd"],
    ["missing=1"], ["opt.missing=1"], ["lr=0.1", "data=glue"], ["none=0"],
])
def test_does_not_match(where: list[str]) -> None:
    assert not matches(PARAMS, parse_where(where))


def test_values_are_json_when_they_parse_else_text() -> None:
    assert parse_value("0.5") == 0.5 and parse_value("a b") == "a b"
    assert parse_value("[1, 2]") == [1, 2] and parse_value("true") is True
    assert parse_where(["k=a=b"])[0].value == "a=b"  # the first '=' splits


@pytest.mark.parametrize("bad", ["lr", "=1", " =1"])
def test_bad_conditions_say_how(bad: str) -> None:
    with pytest.raises(SelectionError, match="key=value"):
        parse_where([bad])
