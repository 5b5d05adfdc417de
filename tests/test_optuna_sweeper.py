"""Search-space parsing of the ser_optuna sweeper (Hydra sweep syntax -> Optuna)."""

from __future__ import annotations

import optuna.distributions as od
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from hydra_plugins.ser_optuna_sweeper.sweeper import _flatten, to_distribution


def parse(line: str):
    return OverridesParser.create().parse_override(line)


def test_sweep_expressions_become_optuna_distributions():
    assert to_distribution(parse("lr=tag(log, interval(0.0001, 0.01))")) == od.FloatDistribution(1e-4, 1e-2, log=True)
    assert to_distribution(parse("p=interval(0, 0.5)")) == od.FloatDistribution(0.0, 0.5)
    assert to_distribution(parse("n=interval(2, 8)")) == od.FloatDistribution(2.0, 8.0)  # Hydra: interval is float
    assert to_distribution(parse("n=int(interval(2, 8))")) == od.IntDistribution(2, 8)
    assert to_distribution(parse("n=range(16, 65, 16)")) == od.IntDistribution(16, 64, step=16)
    assert to_distribution(parse("bs=choice(16, 32)")) == od.CategoricalDistribution([16, 32])
    # lists are not Optuna values: they travel as their override strings
    channels = to_distribution(parse("c=choice([8,16],[16,32])"))
    assert channels == od.CategoricalDistribution(["[8,16]", "[16,32]"])


def test_float_range_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="use interval"):
        to_distribution(parse("p=range(0.1, 0.5, 0.1)"))


def test_nested_params_from_the_command_line_are_flattened():
    nested = {"model.backbone.dropout": "interval(0, 0.5)", "model": {"optimizer": {"lr": "interval(0.001, 0.01)"}}}
    assert _flatten(nested) == {"model.backbone.dropout": "interval(0, 0.5)", "model.optimizer.lr": "interval(0.001, 0.01)"}
