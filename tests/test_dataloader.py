"""Dataset / TensorDataset / DataLoader: PyTorch's batching, reproducible shuffling from
(seed, epoch), batches on the arrays' backend, and one-line errors."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet.backend import backend_name, to_numpy
from scratchnet.data import (BatchLoader, DataLoader, Dataset, Subset, TensorDataset,
                             default_collate, random_split)


def _data(xp, n=10):
    x = xp.asarray(np.arange(n * 4, dtype=np.float32).reshape(n, 1, 2, 2))
    y = xp.asarray(np.arange(n))
    return x, y


def test_tensor_dataset_batches_are_tuples_on_the_backend(xp):
    x, y = _data(xp)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 1, 2, 2), (4, 1, 2, 2), (2, 1, 2, 2)]
    for xb, yb in batches:
        assert backend_name(xb) == backend_name(yb) == xp.__name__
    np.testing.assert_array_equal(np.concatenate([to_numpy(b[1]) for b in batches]), np.arange(10))
    for xb, _ in loader:                              # the unpacking a PyTorch loop does
        assert xb.dtype == np.float32
    dropped = DataLoader(TensorDataset(x), batch_size=4, drop_last=True)
    assert len(dropped) == 2 and [len(b) for b in dropped] == [1, 1]
    assert [b[0].shape[0] for b in dropped] == [4, 4]


def test_shuffle_is_a_permutation_per_epoch_from_seed_and_epoch(xp):
    x, y = _data(xp, 23)
    loader = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, seed=3)
    epochs = [np.concatenate([to_numpy(yb) for _, yb in loader]) for _ in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(23))
    assert not np.array_equal(epochs[0], epochs[1])
    again = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=True, seed=3)
    again.epoch = 2                                   # a resumed run's third epoch
    np.testing.assert_array_equal(np.concatenate([to_numpy(yb) for _, yb in again]), epochs[2])
    # the same order as BatchLoader's with the same seed
    same = np.concatenate([to_numpy(b) for b in BatchLoader(y, 5, shuffle=True, seed=3)])
    np.testing.assert_array_equal(same, epochs[0])
    for (xb, yb) in DataLoader(TensorDataset(x, y), batch_size=23, shuffle=True, seed=1):
        np.testing.assert_array_equal(to_numpy(xb)[:, 0, 0, 0], to_numpy(yb) * 4)   # rows stay paired


def test_default_seed_follows_manual_seed():
    y = np.arange(50)

    def order():
        return np.concatenate([b[0] for b in DataLoader(TensorDataset(y), 10, shuffle=True)])

    sn.manual_seed(0)
    a = order()
    sn.manual_seed(0)
    b = order()
    sn.manual_seed(1)
    c = order()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


class Pairs(Dataset):
    """A map-style dataset as a PyTorch user writes one."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "index": i, "name": f"img{i}"}, 0.5 * i


def test_a_custom_dataset_is_collated_field_by_field(xp):
    x, _ = _data(xp, 5)
    batches = list(DataLoader(Pairs(x), batch_size=2))
    fields, weight = batches[0]
    assert fields["image"].shape == (2, 1, 2, 2) and backend_name(fields["image"]) == xp.__name__
    assert fields["index"].dtype == np.int64 and fields["name"] == ["img0", "img1"]
    assert weight.dtype == np.float64 and weight.tolist() == [0.0, 0.5]
    assert batches[-1][0]["index"].tolist() == [4]


def test_collation_matches_pytorchs_default_collate():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    batch = [(np.full((2,), i, dtype=np.float32), i, 0.5 * i, True) for i in range(3)]
    mine = default_collate(batch)
    theirs = torch_collate(batch)
    for a, b in zip(mine, theirs):
        assert a.dtype == b.numpy().dtype
        np.testing.assert_array_equal(a, b.numpy())
    assert isinstance(mine, tuple)


def test_sampler_batch_sampler_subset_and_random_split():
    y = np.arange(10)
    ds = TensorDataset(y)
    assert [b[0].tolist() for b in DataLoader(ds, 3, sampler=[9, 8, 7, 1])] == [[9, 8, 7], [1]]
    assert [b[0].tolist() for b in DataLoader(ds, batch_sampler=[[0, 5], [2]])] == [[0, 5], [2]]
    assert len(DataLoader(ds, batch_sampler=[[0, 5], [2]])) == 2
    sub = Subset(ds, [4, 2])
    assert len(sub) == 2 and sub[1][0] == 2
    train, val = random_split(ds, [0.7, 0.3], seed=0)
    assert (len(train), len(val)) == (7, 3)
    assert sorted(train.indices + val.indices) == list(range(10))
    a, b, c = random_split(ds, [0.34, 0.33, 0.33], seed=0)      # remainder to the first
    assert (len(a), len(b), len(c)) == (4, 3, 3)
    assert random_split(ds, [5, 5], seed=1)[0].indices == random_split(ds, [5, 5], seed=1)[0].indices


@pytest.mark.parametrize("make,error,match", [
    (lambda: TensorDataset(np.zeros(3), np.zeros(4)), ValueError, r"same first dimension.*\[3, 4\]"),
    (lambda: TensorDataset(), ValueError, "at least one array"),
    (lambda: TensorDataset([1, 2]), TypeError, "must be an array"),
    (lambda: DataLoader(TensorDataset(np.zeros(3)), batch_size=0), ValueError, "positive int"),
    (lambda: DataLoader(TensorDataset(np.zeros(3)), shuffle=True, sampler=[0]), ValueError,
     "sampler excludes shuffle"),
    (lambda: DataLoader(TensorDataset(np.zeros(3)), 2, batch_sampler=[[0]]), ValueError,
     "batch_sampler excludes"),
    (lambda: DataLoader(np.zeros(3).tolist().__iter__()), TypeError, "map-style"),
    (lambda: random_split(TensorDataset(np.zeros(3)), [1, 1]), ValueError, "summing to"),
    (lambda: list(DataLoader(Dataset())), NotImplementedError, "must define __len__"),
    (lambda: default_collate([object()]), TypeError, "cannot batch examples of type object"),
])
def test_errors_say_what_was_expected(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_pytorch_only_arguments_are_accepted():
    loader = DataLoader(TensorDataset(np.zeros((4, 2))), batch_size=2, num_workers=4,
                        pin_memory=True)
    assert len(list(loader)) == 2
