"""scratchnet.save / scratchnet.load: state dicts round-trip exactly (types included), files
written from CuPy load on NumPy, nothing is pickled, and a bad file gets one line."""
import zipfile

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn, optim
from scratchnet.backend import backend_name, to_numpy
from scratchnet.fileio import WriteError
from scratchnet.optim.lr_scheduler import StepLR


def _trained(xp):
    sn.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).to(xp.__name__)
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = StepLR(opt, step_size=2)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32))
    for _ in range(3):
        opt.zero_grad()
        y = model(x)
        model.backward(xp.ones_like(y))
        opt.step()
        sched.step()
    return model, opt, sched


def test_a_training_state_round_trips_exactly(tmp_path, xp):
    model, opt, sched = _trained(xp)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "epoch": 3, "note": "run 1", "best": None,
             "flags": [True, 2.5, (1, "a")], "loss": np.float32(0.125), "by_step": {1: 0.5, 7: 0.25}}
    path = tmp_path / "run.pt"
    sn.save(state, path)
    back = sn.load(path)
    assert back.keys() == state.keys()
    assert list(back["model"]) == list(state["model"])
    for k, v in state["model"].items():
        assert isinstance(back["model"][k], np.ndarray)          # host arrays by default
        np.testing.assert_array_equal(back["model"][k], to_numpy(v))
        assert back["model"][k].dtype == v.dtype
    assert back["model"]["1.num_batches_tracked"].dtype == np.int64
    assert back["optimizer"]["param_groups"] == state["optimizer"]["param_groups"]   # betas a tuple
    assert list(back["optimizer"]["state"]) == [0, 1, 2, 3]                          # int keys
    assert back["optimizer"]["state"][0]["step"] == 3
    assert back["scheduler"] == sched.state_dict()
    assert back["flags"] == [True, 2.5, (1, "a")] and back["by_step"] == {1: 0.5, 7: 0.25}
    assert type(back["loss"]) is np.float32 and back["loss"] == 0.125
    assert back["best"] is None and back["epoch"] == 3 and back["note"] == "run 1"

    model2, opt2, _ = _trained(xp)                   # loads into new objects and continues
    model2.load_state_dict(back["model"])
    opt2.load_state_dict(back["optimizer"])
    with zipfile.ZipFile(path) as z:                 # plain .npy members and one JSON entry
        assert all(name.endswith(".npy") for name in z.namelist())
    with np.load(path, allow_pickle=False) as z:
        assert "__tree__" in z.files


def test_map_location_puts_arrays_on_a_backend(tmp_path, xp):
    sn.save({"w": np.arange(3.0)}, tmp_path / "w.npz")
    w = sn.load(tmp_path / "w.npz", map_location=xp.__name__)["w"]
    assert backend_name(w) == xp.__name__
    assert sn.load(tmp_path / "w.npz", map_location="cpu")["w"].sum() == 3.0
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        sn.load(tmp_path / "w.npz", map_location="tpu")


def test_what_cannot_be_saved_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"obj is a Sequential, which would need pickle.*save its "
                                        r"state_dict\(\)"):
        sn.save(nn.Sequential(nn.ReLU()), tmp_path / "m.pt")
    with pytest.raises(TypeError, match=r"obj\['hp'\]\['fn'\] is a function"):
        sn.save({"hp": {"fn": lambda k: k}}, tmp_path / "m.pt")
    with pytest.raises(TypeError, match=r"obj\[0\] is an array of dtype object"):
        sn.save([np.array([{}], dtype=object)], tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())              # nothing was written


def test_a_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "m.pt"
    sn.save({"a": np.ones(2)}, path)
    with pytest.raises(TypeError):
        sn.save({"a": np.ones(2), "b": object()}, path)
    np.testing.assert_array_equal(sn.load(path)["a"], np.ones(2))
    with pytest.raises(WriteError, match="cannot write"):
        sn.save({"a": 1}, path / "inside-a-file")


def test_bad_files_get_one_line(tmp_path):
    good = tmp_path / "good.pt"
    sn.save({"w": np.ones((50, 50))}, good)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02}q\x00.")             # a pickle
    other = tmp_path / "other.npz"
    np.savez(other, w=np.ones(2))
    broken = tmp_path / "broken.pt"                  # bytes of an array damaged, sizes intact
    middle = len(data) // 3
    broken.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 8])
                       + data[middle + 8:])
    for path, match in [(cut, "not a file written by scratchnet.save"),
                        (junk, "not a file written by scratchnet.save"),
                        (other, "was not written by scratchnet.save"),
                        (broken, "damaged or not a scratchnet.save file")]:
        with pytest.raises(sn.SerializationError, match=match) as info:
            sn.load(path)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sn.load(tmp_path / "missing.pt")
