"""First-call rounds for `perf.assert_scaling(metric="first_call")`.

A first call (trace, compile, run) happens once per callable, so it cannot be repeated and
calibrated like a warm call. Each sample here calls `make(n)` again and times the first call
of the callable it returns, waited for by the instrument its output selects; a round takes
one sample of every size, in an order rotated from round to round (as the engine's rounds
do), so drift during the run does not bend the fit. Rounds run until `min_rounds` are in,
then more while the claim is undecided and the budget pays for them; each sample is one
"chunk" of one call in the candidate's results.

With JAX, a first call that compiled nothing measures a cached program, not a first call
(`make(n)` returned the same jitted function again): that is a `PerfUsageError`.

`metric="compile"` (`compile_only`): the same first calls, but each sample is the seconds
XLA's backend compilations took during it (`jax.monitoring`'s compile events), so a claim
about the compiler's work is not blurred by the tracing and Python work around it (which
the first-call metric includes, as the user pays it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._compile import compile_log
from ._engine import Candidate, Engine
from ._errors import PerfUsageError
from .instruments import select_instrument


class FirstCallRounds:
    """The candidates (one per size) of a first-call scaling check, and their rounds."""

    def __init__(
        self,
        engine: Engine,
        make: Callable[[Any], Callable[[], Any]],
        sizes: list[Any],
        instrument: str | None,
        *,
        compile_only: bool = False,
    ):
        self.engine = engine
        #: `metric="compile"`: a sample is the first call's backend-compile seconds only.
        self.compile_only = compile_only
        self.make = make
        self.sizes = sizes
        self.instrument = instrument or engine.settings.instrument
        self.candidates: list[Candidate] = []

    def _sample(self, n: Any) -> tuple[float, Any, Any, Any]:
        fn = self.make(n)
        if not callable(fn):
            raise PerfUsageError(
                f"`make({n!r})` must return a callable taking no arguments, got {fn!r}."
            )
        with compile_log() as log:
            start = time.perf_counter()
            out = fn()
            chosen = select_instrument(out, self.instrument)
            chosen.wait(out)
            seconds = time.perf_counter() - start
        if chosen.name == "jax" and log.compilations == 0:
            raise PerfUsageError(
                f"`metric='first_call'`: the first call of `make({n!r})()` compiled nothing, "
                "so it timed a cached program, not a first call. `make(n)` must build what "
                "it returns afresh each time it is called (e.g. a new `jax.jit` of a new "
                "function)."
            )
        if self.compile_only:
            if log.compilations == 0:
                raise PerfUsageError(
                    f"`metric='compile'`: the first call of `make({n!r})()` ran no XLA "
                    "compilation (the metric times JAX's backend compiles; use "
                    "`metric='first_call'` for anything else)."
                )
            seconds = log.compile_s
        return seconds, fn, chosen, log

    def _round(self) -> None:
        self.engine.before_round()
        k = len(self.candidates[0].samples) % len(self.candidates) if self.candidates else 0
        order = list(range(len(self.sizes)))
        order = order[k:] + order[:k]
        start = time.perf_counter()
        for i in order:
            seconds, _, _, log = self._sample(self.sizes[i])
            cand = self.candidates[i]
            cand.samples.append(seconds)
            cand.chunk_s.append(seconds)
            cand.first_compile.merge(log)
        wall = time.perf_counter() - start
        self.engine.round_walls.append(wall)
        self.engine.spent_s += wall

    def start(self) -> list[Candidate]:
        """One candidate per size (its first sample is its `first_call_s`), `min_rounds` in."""
        start = time.perf_counter()
        for n in self.sizes:
            seconds, fn, chosen, log = self._sample(n)
            cand = Candidate(f"n={n}", fn, chosen, seconds, log)
            cand.samples.append(seconds)
            cand.chunk_s.append(seconds)
            self.candidates.append(cand)
        self.engine.round_walls.append(time.perf_counter() - start)
        self.engine.spent_s += self.engine.round_walls[-1]
        for _ in range(self.engine.settings.min_rounds - 1):
            self._round()
        return self.candidates

    def extend(self, candidates: list[Candidate]) -> bool:
        """Half again as many rounds as so far (at least 2), as far as the budget pays."""
        del candidates  # the same list as `self.candidates`
        want = max(2, len(self.candidates[0].samples) // 2)
        if not self.engine.can_afford(self.candidates, 2):
            return False
        for _ in range(want):
            if not self.engine.can_afford(self.candidates, 1):
                break
            self._round()
        return True
