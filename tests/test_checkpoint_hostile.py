"""Hostile and damaged checkpoints: every header is checked before any data is read, so a
small file cannot take a lot of memory; weights, optimizer state and shapes are checked
before the model or optimizer changes; each failure is one CheckpointError line."""
import io
import json
import os
import resource
import zipfile

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import optim
from scratchnet.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from scratchnet.models import UNet, conv_autoencoder


def write_npz(path, arrays, compress=False):
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def good(tmp_path, model=None, **meta):
    sn.manual_seed(0)
    model = model or conv_autoencoder()
    opt = optim.Adam(model.parameters())
    opt.zero_grad()
    opt.step()                                    # a real optimizer state
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, opt, config={"model": "conv", "noise": "gaussian",
                                              "dataset": "mnist", "noise_factor": 0.5}, **meta)
    return path, model, opt


def rewrite(path, change):
    """Rewrite the checkpoint at path with ``change(arrays)`` applied (arrays by member)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    return write_npz(path, arrays)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path, _, _ = good(tmp_path)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["model/encoder.0.weight"] = np.zeros((300 << 20) // 4, np.float32)   # 300 MB of zeros
    bomb = write_npz(tmp_path / "bomb.npz", arrays, compress=True)
    assert bomb.stat().st_size < 2 << 20
    before = peak_mb()
    with pytest.raises(CheckpointError, match="would inflate from .* which no checkpoint does"):
        load_checkpoint(bomb)
    assert peak_mb() - before < 100


def test_shapes_are_checked_from_the_headers_before_reading(tmp_path, monkeypatch):
    path, _, _ = good(tmp_path)
    import numpy.lib.format as fmt
    reads = []
    real = fmt.read_array
    monkeypatch.setattr(fmt, "read_array", lambda *a, **k: reads.append(1) or real(*a, **k))
    with pytest.raises(CheckpointError, match="does not fit this model: missing keys"):
        load_checkpoint(path, UNet())
    assert len(reads) == 1                       # the meta data only


def test_non_finite_weights_are_refused(tmp_path):
    path, _, _ = good(tmp_path)

    def poison(arrays):
        arrays["model/decoder.0.weight"][0, 0, 0, 0] = np.nan
    rewrite(path, poison)
    with pytest.raises(CheckpointError, match="'decoder.0.weight' holds NaN or infinite values"):
        load_checkpoint(path, conv_autoencoder())
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_model(path)


def test_a_state_that_does_not_fit_leaves_the_model_unchanged():
    model = conv_autoencoder()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    state = {k: v + 1 for k, v in model.state_dict().items()}
    state["decoder.4.bias"] = np.zeros(7, np.float32)             # the last key is wrong
    with pytest.raises(ValueError, match="'decoder.4.bias' has shape"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("change, message", [
    (lambda a: a.__setitem__("optim/0/exp_avg", np.zeros((3, 3), np.float32)),
     r"optimizer state 'exp_avg' of parameter 0 has shape \(3, 3\)"),
    (lambda a: a.__setitem__("optim/99/exp_avg", np.zeros(3, np.float32)), "parameter 99"),
])
def test_optimizer_arrays_are_checked_against_their_parameters(tmp_path, change, message):
    path, model, opt = good(tmp_path)
    rewrite(path, change)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, model, opt)
    for k, v in model.state_dict().items():             # nothing was loaded
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("field, value, message", [
    ("lr", "fast", "optimizer setting lr is 'fast', expected a finite number"),
    ("lr", float("nan"), "optimizer setting lr is nan"),
    ("lr", -1.0, "invalid learning rate -1.0"),
    ("params", [0], "parameter groups do not match"),
])
def test_optimizer_settings_are_validated(tmp_path, field, value, message):
    path, model, opt = good(tmp_path)

    def change(arrays):
        meta = json.loads(str(arrays["meta"]))
        meta["optimizer"]["param_groups"][0][field] = value
        arrays["meta"] = np.array(json.dumps(meta))
    rewrite(path, change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, conv_autoencoder(), optim.Adam(conv_autoencoder().parameters()))


def test_optimizer_scalars_must_be_numbers(tmp_path):
    path, model, opt = good(tmp_path)

    def change(arrays):
        meta = json.loads(str(arrays["meta"]))
        meta["optimizer"]["scalars"]["0"]["step"] = "x"
        arrays["meta"] = np.array(json.dumps(meta))
    rewrite(path, change)
    with pytest.raises(CheckpointError, match="scalar state for parameter 0"):
        load_checkpoint(path, conv_autoencoder(), optim.Adam(conv_autoencoder().parameters()))


def test_a_huge_width_in_the_config_is_refused_before_building(tmp_path):
    path, _, _ = good(tmp_path)

    def change(arrays):
        meta = json.loads(str(arrays["meta"]))
        meta["config"].update(model="unet", width=3000)
        arrays["meta"] = np.array(json.dumps(meta))
    rewrite(path, change)
    before = peak_mb()
    with pytest.raises(CheckpointError, match="width must be at most 256"):
        load_model(path)
    assert peak_mb() - before < 100


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "c.npz"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(fifo)


def test_running_out_of_memory_is_one_line(tmp_path, monkeypatch):
    path, _, _ = good(tmp_path)
    import numpy.lib.format as fmt

    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr(fmt, "read_array", no_memory)
    with pytest.raises(CheckpointError, match="not enough memory to read it"):
        load_checkpoint(path)


def test_members_that_are_not_arrays_or_hold_objects_are_refused(tmp_path):
    path, _, _ = good(tmp_path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="member 'notes.txt' is not an array"):
        load_checkpoint(path)
    obj = write_npz(tmp_path / "o.npz", {"meta": np.array("{}")})
    with zipfile.ZipFile(obj, "a") as z:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        z.writestr("model/x.npy", buf.getvalue())
    with pytest.raises(CheckpointError, match="holds Python objects"):
        load_checkpoint(obj)
