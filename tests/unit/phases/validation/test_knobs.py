"""runbook_lib.phases.validation.steps.check_knobs: notebook 06's knobs, each bad one named before anything runs."""
from __future__ import annotations

import pytest

from runbook_lib.core.errors import ParameterError
from runbook_lib.phases.validation.steps import check_knobs

GOOD = {"lag_seconds": 10.0, "lag_threshold_s": 1.0, "heartbeat_interval_s": 0.1, "metric_minutes": 15.0,
        "metric_period_s": 60, "check_target_seconds": 0.5, "check_mode": "auto", "check_lag_limit_s": 0.0}


def test_the_notebook_defaults_and_each_mode_and_a_lag_limit_pass():
    check_knobs(**GOOD)
    for mode in ("auto", "fresh", "resume"):
        check_knobs(**{**GOOD, "check_mode": mode})
    check_knobs(**{**GOOD, "check_lag_limit_s": 1, "check_target_seconds": 2})


@pytest.mark.parametrize("bad", [{"check_target_seconds": 0}, {"check_target_seconds": "0.5"},
                                 {"check_target_seconds": True}, {"check_target_seconds": 600},
                                 {"check_mode": "again"}, {"check_mode": ""}, {"check_lag_limit_s": -1},
                                 {"check_lag_limit_s": None}, {"metric_period_s": 45}])
def test_a_bad_knob_is_named(bad):
    with pytest.raises(ParameterError) as e:
        check_knobs(**{**GOOD, **bad})
    assert next(iter(bad)) in str(e.value)
