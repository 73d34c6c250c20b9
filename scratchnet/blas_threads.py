"""BLAS's thread count for a training loop, chosen by timing the loop's own steps.

OpenBLAS uses every core by default, and its threads wait for each other by spinning. On an idle
machine that is the fastest setting for large products; on a busy one (a laptop, a shared
machine, a second job) a spinning thread whose core is taken stalls every product: measured on
two cores with one other CPU-bound process, a reference-model step took 86-130 ms with BLAS's two
threads and 16-18 ms with one. Which setting wins depends on the model, the batch and what else
runs, and can change during a run, so `BlasThreadTuner` measures instead of guessing:

* at fixed steps of the run (the first four, then every 500th: 1, 2, 1, 2 threads) it times
  the candidate counts, 1 and the number of cores, and keeps BLAS's default of all cores
  unless fewer threads were at least 1.25 times faster: so a count costs at most 1/1.25 = 0.8
  of the best speed, and on an idle machine (where more threads are faster) and on a busy one
  (where fewer are 5 times faster) the choice is the same every time;
* it probes at once when the steps' speed changes by more than 40% from what was measured
  when the count was chosen (another process started).

The count changes the last bits of a product (OpenBLAS splits a product between its threads, and
the edges of the split are computed by other kernels): measured, five training steps of each
model at one and at two threads end in weights that differ in the last digits. So a run keeps
its count: the checkpoint records it and a resumed run continues with it, and a resumed run is
bit for bit the run that never stopped, unless the machine's load changed so much in between
that the count had to change. ``SCRATCHNET_BLAS_THREADS=N`` fixes the count (no timing), and so
does setting ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` yourself.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

from .threads import positive_env

__all__ = ["BlasThreadTuner", "fixed_blas_threads"]

PROBE_STEPS = 2                # steps timed per candidate in a probe (the fastest of them counts)
PERIOD = 500                   # a probe at every PERIOD-th step (and at the first)
RECENT = 8                     # steps whose median is compared with the chosen count's time
CHANGE = 1.4                   # that median this many times slower (or faster): probe at once
WORTH = 1.25                   # fewer threads must be this much faster to replace all cores


def fixed_blas_threads() -> int | None:
    """The count the user fixed, or None: ``SCRATCHNET_BLAS_THREADS``, else
    ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS`` (which BLAS itself already obeys)."""
    for name in ("SCRATCHNET_BLAS_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        n = positive_env(name)
        if n is not None:
            return n
    return None


def _blas_setter() -> tuple[Callable[[int], None], Callable[[], None]] | None:
    """(set the thread count of every loaded BLAS, give each loaded BLAS back the count it has
    now), or None without threadpoolctl or a BLAS it knows. Two BLAS libraries in one process
    (NumPy's and another package's) may have different counts: each gets its own back."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    if not libs:
        return None

    original = [lib.num_threads for lib in libs]

    def set_threads(n: int) -> None:
        for lib in libs:
            lib.set_num_threads(n)

    def restore() -> None:
        for lib, n in zip(libs, original):
            lib.set_num_threads(n)
    return set_threads, restore


class BlasThreadTuner:
    """Time the steps of a loop and run them at the better BLAS thread count.

    Args:
        candidates: thread counts to choose from, the default (BLAS's own, all cores) last
            (default: 1 and the number of cores).
        initial: (step, count): the index of the next step and the count a checkpoint
            recorded, for a resumed run: it continues with that count and the same schedule.
            None: a new run, starting at step 0 with a probe.
        set_threads: sets BLAS's count (default: through threadpoolctl, on every loaded BLAS).
        clock: seconds, for timing (tests pass a fake one).

    Use it around each step, ``with tuner: step()``, then ``tuner.close()`` to give BLAS back
    its original count. With one candidate, a count fixed by the environment
    (`fixed_blas_threads`) or no BLAS to control, it sets that count (or nothing) and
    never times anything. ``tuner.threads`` is the count in use and ``tuner.step`` the index
    of the next step (what a checkpoint records); ``tuner.choices`` holds one (step, count,
    seconds per step at each candidate) per probe.
    """

    def __init__(self, candidates: tuple[int, ...] | None = None,
                 initial: tuple[int, int] | None = None,
                 set_threads: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self._restore: Callable[[], None] | None = None
        if set_threads is None:
            found = _blas_setter()
            set_threads, self._restore = found if found else (None, None)
        self._set, self._clock, self._current = set_threads, clock, None
        fixed = fixed_blas_threads()
        if fixed:
            candidates = (fixed,)
        elif candidates is None:
            candidates = tuple(sorted({1, os.cpu_count() or 1}))
        self.candidates = tuple(candidates)
        self.step, self.threads = 0, self.candidates[-1]
        if initial is not None and initial[1] in self.candidates:
            self.step, self.threads = int(initial[0]), int(initial[1])
        self.choices: list[tuple[int, int, dict[int, float]]] = []
        self._reference: float | None = None
        self._recent: list[float] = []
        self._probe: list[int] = []
        self._timings: dict[int, list[float]] = {}
        if self._tuning and self.step % PERIOD < len(self._probe_order()):
            self._start_probe(self.step % PERIOD)
        self._apply(self._probe[0] if self._probe else self.threads)

    @property
    def _tuning(self) -> bool:
        return self._set is not None and len(self.candidates) > 1

    def _probe_order(self) -> list[int]:
        """Alternating, so a change in load hits every candidate alike: 1 2 1 2."""
        return [c for _ in range(PROBE_STEPS) for c in self.candidates]

    def _start_probe(self, done: int = 0) -> None:
        self._probe, self._timings, self._recent = self._probe_order()[done:], {}, []

    def _apply(self, n: int) -> None:
        if self._set is not None and n != self._current:
            self._set(n)
            self._current = n

    def __enter__(self) -> "BlasThreadTuner":
        self._t0 = self._clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.step += 1
        if not self._tuning:
            return
        seconds = self._clock() - self._t0
        if self._probe:
            self._timings.setdefault(self._probe.pop(0), []).append(seconds)
            if not self._probe:
                self._choose()
        else:
            self._recent = (self._recent + [seconds])[-RECENT:]
            median = statistics.median(self._recent)
            if len(self._recent) == RECENT and self._reference is None:
                self._reference = median              # resumed with a recorded count: its speed
            changed = (len(self._recent) == RECENT and
                       not 1 / CHANGE < median / self._reference < CHANGE)
            if changed or self.step % PERIOD == 0:
                self._start_probe()
        self._apply(self._probe[0] if self._probe else self.threads)

    def _choose(self) -> None:
        best = {c: min(ts) for c, ts in self._timings.items()}
        default, fewest = self.candidates[-1], min(best, key=best.get)
        winner = fewest if best[default] >= WORTH * best[fewest] else default
        self.threads, self._reference, self._recent = winner, best[winner], []
        self.choices.append((self.step, winner, best))

    def summary(self) -> str:
        """One line: the count in use and the last probe's step times."""
        if not self.choices:
            return f"BLAS threads: {self.threads}" + ("" if self._tuning else " (fixed)")
        _, n, best = self.choices[-1]
        times = ", ".join(f"{c}: {t * 1e3:.0f} ms" for c, t in sorted(best.items()))
        return f"BLAS threads: {n} (step time by thread count, last measured: {times})"

    def close(self) -> None:
        """Give BLAS back the count it had."""
        if self._restore is not None:
            self._restore()
            self._current = None
