"""Turn-taking between the two runs of a `perfsuite ab` pair (`perfsuite.ab._turns`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perfsuite.ab import _turns


WORKER = textwrap.dedent(
    """
    import sys, time
    from perfsuite.ab._turns import Turns
    log, n = sys.argv[1:3]
    turns = Turns.from_env()  # as `PairTurns.env` set it
    with open(log, "w") as fh:
        for i in range(int(n)):
            turns.take()
            start = time.perf_counter()
            time.sleep(0.002)  # the "timed round"
            fh.write(f"{start} {time.perf_counter()} {int(turns.alone)}\\n")
    """
)


def _pair(tmp_path: Path, n_a: int, n_b: int) -> dict[str, list[tuple[float, float, int]]]:
    """Run two workers taking turns (A measures first) through both ends of the protocol:
    the parent's `PairTurns`, as `perfsuite ab` holds it, and each worker's `Turns`."""
    procs = {}
    with _turns.PairTurns(tmp_path, "000", ("a", "b"), None) as pair:
        for side, n in (("a", n_a), ("b", n_b)):
            cmd = [sys.executable, "-c", WORKER, str(tmp_path / f"{side}.log"), str(n)]
            procs[side] = subprocess.Popen(cmd, env={**os.environ, **pair.env(side)})
        done: set[str] = set()
        deadline = time.monotonic() + 60
        while len(done) < 2:
            for side in "ab":
                if side not in done and procs[side].poll() is not None:
                    assert procs[side].returncode == 0
                    pair.exited(side)
                    done.add(side)
            assert time.monotonic() < deadline, "the pair deadlocked"
            time.sleep(0.005)
    assert not list(tmp_path.glob("turns-*"))  # the FIFOs are gone with the pair
    out = {}
    for side in "ab":
        rows = (tmp_path / f"{side}.log").read_text().split("\n")
        out[side] = [(float(x), float(y), int(z)) for x, y, z in (r.split() for r in rows if r)]
    return out


def test_rounds_alternate_strictly_and_never_overlap(tmp_path) -> None:
    logs = _pair(tmp_path, 10, 10)
    rounds = sorted([(s, e, side) for side, rows in logs.items() for s, e, _ in rows])
    assert [side for _, _, side in rounds] == ["a", "b"] * 10  # A first, then strictly in turn
    for (_, end, _), (start, _, _) in zip(rounds, rounds[1:]):
        assert start >= end  # one round at a time


def test_the_survivor_goes_on_alone_when_its_partner_exits(tmp_path) -> None:
    logs = _pair(tmp_path, 3, 8)
    assert len(logs["b"]) == 8
    assert [alone for _, _, alone in logs["b"]][-4:] == [1, 1, 1, 1]


def test_a_partner_that_never_takes_a_turn_does_not_block(tmp_path) -> None:
    logs = _pair(tmp_path, 0, 3)
    assert len(logs["b"]) == 3


def test_without_the_variable_taking_a_turn_does_nothing(monkeypatch) -> None:
    monkeypatch.delenv(_turns.ENV, raising=False)
    assert _turns.Turns.from_env() is None


@pytest.mark.parametrize("spec", ["x", "a:b", "a:b:yes", "a:b:1:cpu0", "a:b:1:2:3"])
def test_a_malformed_variable_names_it_and_the_format(monkeypatch, spec) -> None:
    monkeypatch.setenv(_turns.ENV, spec)
    with pytest.raises(ValueError, match=r"PERFSUITE_AB_TURNS=.*INBOX:OUTBOX:FIRST\[:CPU\]"):
        _turns.Turns.from_env()


def test_waiting_for_a_turn_stops_when_the_parent_is_gone(tmp_path, monkeypatch) -> None:
    """A run whose `perfsuite ab` died (no `X` will ever come) raises within seconds."""
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    for path in (inbox, outbox):
        os.mkfifo(path)
    monkeypatch.setattr(_turns, "POLL_S", 0.05)
    # As if reparented: the recorded parent is no longer this process's parent.
    turns = _turns.Turns(str(inbox), str(outbox), first=True, parent=os.getppid() + 1)
    start = time.monotonic()
    with pytest.raises(_turns.TurnsError, match=r"`perfsuite ab` \(pid \d+\).* is gone"):
        turns.take()
    assert time.monotonic() - start < 2
    assert os.read(turns._out, 1) == _turns.TOKEN  # it had handed the turn over as usual
    os.close(turns._in)
    os.close(turns._out)


def test_the_parent_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    for name in ("in", "out"):
        os.mkfifo(tmp_path / name)
    monkeypatch.setenv(_turns.ENV, f"{tmp_path / 'in'}:{tmp_path / 'out'}:0")
    monkeypatch.setenv(_turns.PARENT_ENV, "12345")
    turns = _turns.Turns.from_env()
    assert turns._parent == 12345
    os.close(turns._in)
    os.close(turns._out)


def test_runs_that_keep_taking_turns_still_notice_the_parent_is_gone(tmp_path, monkeypatch):
    """The partner hands the turn straight back (no wait ever times out): still stops."""
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    for path in (inbox, outbox):
        os.mkfifo(path)
    turns = _turns.Turns(str(inbox), str(outbox), first=False, parent=os.getppid() + 1)
    os.write(turns._in, _turns.TOKEN)  # our turn is already there
    with pytest.raises(_turns.TurnsError, match="is gone"):
        turns.take()
    os.close(turns._in)
    os.close(turns._out)


# --------------------------------------------------------------------------- the pytest end


def test_the_pytest_end_opens_its_fifos_at_the_first_round_and_takes_turns(tmp_path) -> None:
    """What the plugin hands the engine as `before_round`: nothing opened at configure time
    (start-up runs on every CPU), then the protocol, then alone once the partner is gone."""
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    end = _turns.PytestTurns((str(inbox), str(outbox), True, None, os.getppid()))
    for path in (inbox, outbox):
        os.mkfifo(path)
    partner_in = os.open(inbox, os.O_RDWR)
    partner_out = os.open(outbox, os.O_RDWR)
    try:
        os.write(partner_in, _turns.TOKEN)  # the partner's round is over: our turn
        end.before_round()
        assert os.read(partner_out, 1) == _turns.TOKEN  # it handed the first round over
        os.write(partner_in, _turns.PARTNER_GONE)
        end.before_round()  # hands over, then learns the partner is gone
        assert os.read(partner_out, 1) == _turns.TOKEN
        start = time.monotonic()
        end.before_round()  # alone: returns at once, writes nothing
        assert time.monotonic() - start < 0.5
    finally:
        os.close(partner_in)
        os.close(partner_out)


@pytest.mark.parametrize(
    ("spec", "args", "message"),
    [
        # The pair's turn-taking is between two processes; xdist workers would all share it.
        ("in:out:0", ["-n", "2"], "*perfsuite ab* runs each revision in one process*-n*"),
        ("in:out:maybe", [], "*PERFSUITE_AB_TURNS='in:out:maybe': expected*"),
    ],
)
def test_a_run_of_a_pair_is_checked_before_any_test(pytester, monkeypatch, spec, args, message):
    pytester.makepyfile("def test_x():\n    pass\n")
    monkeypatch.setenv(_turns.ENV, spec)
    result = pytester.runpytest("--perf", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    # Without --perf the variable is not read: the run is not a measured one. (In-process
    # sessions, one after the other: each makes its own end, nothing is kept in a module.)
    assert pytester.runpytest("-p", "no:cacheprovider").ret == 0


def test_a_run_that_measures_nothing_never_touches_the_fifos(pytester, monkeypatch) -> None:
    """The FIFOs named do not exist: a session without timed rounds still passes."""
    pytester.makepyfile("import pytest\n\n\n@pytest.mark.perf\ndef test_x():\n    pass\n")
    monkeypatch.setenv(_turns.ENV, f"{pytester.path / 'no-in'}:{pytester.path / 'no-out'}:1")
    result = pytester.runpytest("--perf", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
