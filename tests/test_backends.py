"""CPU vs GPU: the same seed gives the same weights and (to float32 tolerance) the same
training trajectory on NumPy and CuPy. Skips cleanly without a GPU."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import backend, nn, optim
from scratchnet.data import BatchLoader, add_gaussian_noise
from scratchnet.models import conv_autoencoder

pytestmark = pytest.mark.gpu


@pytest.fixture
def cupy():
    if not backend.is_available("cupy"):
        pytest.skip("CuPy backend unavailable (no CuPy or no CUDA GPU)")
    return backend.get_backend("cupy")


def _train(name, steps=5):
    sn.manual_seed(0)
    model = conv_autoencoder().to(name)
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    mse = nn.MSELoss()
    r = np.random.default_rng(0)
    losses = []
    initial = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
    xp = backend.get_backend(name)
    for _ in range(steps):
        clean = r.random((16, 1, 28, 28), dtype=np.float32)
        noisy = np.clip(clean + 0.5 * r.standard_normal(clean.shape, dtype=np.float32), 0, 1)
        opt.zero_grad()
        loss = mse(model(xp.asarray(noisy)), xp.asarray(clean))
        model.backward(mse.backward())
        opt.step()
        losses.append(float(loss))
    return initial, losses, {k: backend.to_numpy(v) for k, v in model.state_dict().items()}


def test_same_seed_same_weights_and_trajectory(cupy):
    init_cpu, loss_cpu, final_cpu = _train("numpy")
    init_gpu, loss_gpu, final_gpu = _train("cupy")
    for k in init_cpu:
        np.testing.assert_array_equal(init_cpu[k], init_gpu[k])
    np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-4)
    for k in final_cpu:
        np.testing.assert_allclose(final_gpu[k], final_cpu[k], rtol=1e-3, atol=1e-5)


def test_training_step_stays_on_the_device(cupy):
    sn.manual_seed(0)
    model = conv_autoencoder().to("cupy")
    x = cupy.asarray(np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32))
    noisy = add_gaussian_noise(x, 0.5, rng=backend.default_rng(0, "cupy"))
    y = model(noisy)
    mse = nn.MSELoss()
    loss = mse(y, x)
    g = model.backward(mse.backward())
    for a in (noisy, y, loss, g, *[p.grad for p in model.parameters()]):
        assert backend.get_array_module(a) is cupy and a.dtype == np.float32
    batches = list(BatchLoader(x, 3, shuffle=True, seed=1))
    assert all(backend.get_array_module(b) is cupy for b in batches)
