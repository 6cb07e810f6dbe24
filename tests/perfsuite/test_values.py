"""Words and parsers live once, without pytest; the plugin, fixture and CLI use the same ones."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from perfsuite import _scaling, _settings, _stats, _values, cli
from perfsuite._options import PerfMarkerOptions
from perfsuite.instruments import InstrumentName, instrument_names


def test_the_lists_of_valid_values_are_the_enums():
    assert _settings.STATISTICS == ("mean", "median")
    assert _scaling.LAWS == tuple(_values.words(_values.Law))
    assert _stats.TESTS == ("signed-rank", "sign")
    assert InstrumentName is _values.InstrumentName
    assert instrument_names() == _values.words(_values.InstrumentName)
    assert PerfMarkerOptions.__dataclass_fields__.keys() == set(_values.words(_values.MarkerKey))


def test_the_values_module_needs_no_pytest():
    code = "import sys, perfsuite._values; assert 'pytest' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("parser", "text", "rule"),
    [
        (_values.parse_seconds, "-1", "positive number of seconds"),
        (_values.parse_fail, "five", "slowdown percentage"),
        (_values.parse_fail, "p99:5%", "slowdown percentage"),
        (_values.parse_positive_int, "0", "positive integer"),
        (_values.parse_level, "1.5", "confidence level in [0.5, 1)"),
        (_values.parse_name, "a/b", "baseline name"),
    ],
)
def test_parsers_name_the_rule(parser, text, rule):
    with pytest.raises(argparse.ArgumentTypeError, match=f"Could not parse value: '{text}'"):
        parser(text)
    with pytest.raises(
        argparse.ArgumentTypeError, match=rule.replace("[", r"\[").replace(")", r"\)")
    ):
        parser(text)


def test_the_cli_and_the_plugin_parse_fail_alike():
    assert _values.parse_fail("min:5%") == _values.FailExpr("min", 0.05)
    assert cli.parse_fail is _values.parse_fail
    from perfsuite import _options

    assert _options.parse_fail is _values.parse_fail
