"""BLAS's thread count chosen by timing the steps (scratchnet.blas_threads): a fake clock and
fake thread setter stand for a machine whose speed per thread count the test decides."""
import json

import numpy as np
import pytest

from scratchnet import blas_threads
from scratchnet.blas_threads import BlasThreadTuner


class Machine:
    """Step times per thread count; ``load`` switches between an idle and a busy machine."""

    def __init__(self):
        self.now, self.threads, self.load = 0.0, None, "idle"
        self.times = {"idle": {1: 0.020, 2: 0.013}, "busy": {1: 0.017, 2: 0.100}}

    def clock(self):
        return self.now

    def set_threads(self, n):
        self.threads = n

    def step(self):
        self.now += self.times[self.load][self.threads]
        return self.threads


def run(tuner, machine, steps):
    used = []
    for _ in range(steps):
        with tuner:
            used.append(machine.step())
    return used


@pytest.fixture(autouse=True)
def no_fixed_count(monkeypatch):
    for name in ("SCRATCHNET_BLAS_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_idle_keeps_all_cores_probing_at_fixed_steps():
    m = Machine()
    tuner = BlasThreadTuner((1, 2), set_threads=m.set_threads, clock=m.clock)
    used = run(tuner, m, 3000)
    assert used[:4] == [1, 2, 1, 2]                          # the fixed first schedule
    assert [i for i, n in enumerate(used) if n == 1] == [0, 2] + [k + d for k in range(500, 3000, 500)
                                                              for d in (0, 2)]
    assert tuner.threads == 2 and len(tuner.choices) == 6


def test_a_busy_machine_switches_to_one_thread_within_a_few_steps():
    m = Machine()
    tuner = BlasThreadTuner((1, 2), set_threads=m.set_threads, clock=m.clock)
    run(tuner, m, 200)
    assert tuner.threads == 2
    m.load = "busy"                                          # another process starts
    used = run(tuner, m, 60)
    assert used.index(1) <= 10 and tuner.threads == 1 and used[-20:] == [1] * 20


def test_throughput_under_load_is_at_least_0_8_of_the_best_fixed_count():
    m = Machine()
    m.load = "busy"
    tuner = BlasThreadTuner((1, 2), set_threads=m.set_threads, clock=m.clock)
    used = run(tuner, m, 3000)
    tuned = sum(m.times["busy"][n] for n in used)
    assert 3000 * m.times["busy"][1] / tuned >= 0.8


def test_fewer_threads_must_be_clearly_faster():
    """1.2 times faster is not enough (all cores keep >= 0.8 of the speed); 1.3 is."""
    for ratio, chosen in ((1.2, 2), (1.3, 1)):
        m = Machine()
        m.times["idle"] = {1: 0.010, 2: 0.010 * ratio}
        tuner = BlasThreadTuner((1, 2), set_threads=m.set_threads, clock=m.clock)
        run(tuner, m, 100)
        assert tuner.threads == chosen


def test_when_the_load_goes_away_all_cores_come_back_at_the_next_probe():
    m = Machine()
    m.load = "busy"
    tuner = BlasThreadTuner((1, 2), set_threads=m.set_threads, clock=m.clock)
    run(tuner, m, 300)
    assert tuner.threads == 1
    m.load = "idle"
    run(tuner, m, 210)                                       # past step 500
    assert tuner.threads == 2


def test_a_resumed_run_continues_with_its_recorded_count_and_schedule():
    m, straight = Machine(), Machine()
    m.load = straight.load = "busy"
    a = BlasThreadTuner((1, 2), set_threads=straight.set_threads, clock=straight.clock)
    full = run(a, straight, 1200)
    b = BlasThreadTuner((1, 2), set_threads=m.set_threads, clock=m.clock)
    first = run(b, m, 700)
    c = BlasThreadTuner((1, 2), initial=(b.step, b.threads), set_threads=m.set_threads,
                        clock=m.clock)
    assert first + run(c, m, 500) == full                    # the same counts at every step


def test_a_count_fixed_by_the_environment_is_kept_untimed(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_BLAS_THREADS", "1")
    m = Machine()
    tuner = BlasThreadTuner(None, set_threads=m.set_threads, clock=m.clock)
    assert run(tuner, m, 100) == [1] * 100 and tuner.choices == []
    assert "(fixed)" in tuner.summary()
    monkeypatch.setenv("SCRATCHNET_BLAS_THREADS", "zero")
    with pytest.raises(ValueError, match="SCRATCHNET_BLAS_THREADS must be a positive integer"):
        blas_threads.fixed_blas_threads()


def test_the_real_blas_gets_its_count_back():
    """Each loaded BLAS gets its own count back, where two (NumPy's and another package's) hold
    different ones: here they are made to, 1 and 2 in turn (SciPy, which scikit-image needs,
    loads a BLAS of its own)."""
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController
    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    original = [lib.num_threads for lib in libs]
    try:
        for i, lib in enumerate(libs):
            lib.set_num_threads(1 + i % 2)
        before = [lib.num_threads for lib in libs]
        a = np.random.default_rng(0).random((200, 200), dtype=np.float32)
        tuner = BlasThreadTuner((1, 2))
        for _ in range(6):
            with tuner:
                a @ a
        tuner.close()
        assert [lib.num_threads for lib in libs] == before
    finally:
        for lib, n in zip(libs, original):
            lib.set_num_threads(n)


# --- inside a training run ---------------------------------------------------------------------
class _Recording(BlasThreadTuner):
    """The real tuner on a fake machine (busy: one thread is faster), recording its start."""
    made: list = []

    def __init__(self, initial=None):
        self.machine = Machine()
        self.machine.load = "busy"
        super().__init__((1, 2), initial=initial, set_threads=self.machine.set_threads,
                         clock=self.machine.clock)
        _Recording.made.append(self)

    def __exit__(self, *exc):
        self.machine.step()
        super().__exit__(*exc)


@pytest.mark.realdata
def test_a_training_run_records_its_count_and_a_resume_continues_with_it(real_data, tmp_path,
                                                                          monkeypatch):
    from scratchnet import experiment
    from scratchnet.checkpoint import load_checkpoint
    monkeypatch.setattr(experiment, "BlasThreadTuner", _Recording)
    _Recording.made.clear()
    cfg = dict(data_dir=str(real_data), limit_train=256, limit_test=64, batch_size=32)  # 8 steps
    lines = []
    experiment.train(experiment.Config(**cfg, epochs=1), tmp_path / "first", progress=False,
                     log=lines.append)
    first = _Recording.made[-1]
    assert [c[:2] for c in first.choices] == [(4, 1)]     # probed steps 0-3, kept the faster
    assert "BLAS threads: 1 (step time by thread count, last measured: 1: 17 ms, 2: 100 ms)" in lines
    assert load_checkpoint(tmp_path / "first" / "checkpoint.npz")["blas_threads"] == 1
    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert metrics["blas_threads"] == {"threads": 1, "probes": [
        {"step": 4, "threads": 1, "seconds_per_step": {"1": 0.017, "2": 0.1}}]}
    experiment.train(experiment.Config(**cfg, epochs=2), tmp_path / "second", progress=False,
                     resume=tmp_path / "first" / "checkpoint.npz", log=lambda s: None)
    resumed = _Recording.made[-1]
    assert (resumed.step, resumed.choices, resumed.machine.threads) == (16, [], 1)  # no probe
