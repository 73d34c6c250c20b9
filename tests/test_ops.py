"""The table of ops and ``scratchnet.override`` (scratchnet/ops.py), and the rules of the layout:
every layer calls one op each way, every faster body belongs to an op with its signature, no
CUDA C outside scratchnet/kernels, the blocked path never calls back into the ops' math."""
import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.data  # noqa: F401  (its op, add_scaled_noise, is registered on import)
from scratchnet import blocked, functional as F, nn, ops, optim
from scratchnet.models import UNet

PKG = Path(sn.__file__).parent


def recording(calls: list[str]) -> dict:
    """An override of every op that records its name and runs the library's version."""
    def make(name):
        def call(*args, **kwargs):
            calls.append(name)
            return ops.OPS[name](*args, **kwargs)
        return call
    return {name: make(name) for name in ops.OPS}


LAYERS = [
    (lambda: nn.Linear(3, 2), (4, 3), "linear", "linear_backward"),
    (nn.ReLU, (2, 3), "relu", "relu_backward"),
    (lambda: nn.LeakyReLU(0.1), (2, 3), "leaky_relu", "leaky_relu_backward"),
    (nn.Sigmoid, (2, 3), "sigmoid", "sigmoid_backward"),
    (nn.Tanh, (2, 3), "tanh", "tanh_backward"),
    (nn.Flatten, (2, 1, 2, 2), "flatten", "flatten_backward"),
    (lambda: nn.Unflatten(1, (1, 2, 2)), (2, 4), "unflatten", "flatten_backward"),
    (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 5), "conv2d_forward", "conv2d_backward"),
    (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2), (2, 2, 3, 3), "conv_transpose2d",
     "conv_transpose2d_backward"),
    (lambda: nn.MaxPool2d(2), (2, 2, 4, 4), "max_pool2d", "max_pool2d_backward"),
    (lambda: nn.AvgPool2d(2), (2, 2, 4, 4), "avg_pool2d", "avg_pool2d_backward"),
    (lambda: nn.Upsample(2), (2, 2, 3, 3), "upsample_nearest", "upsample_nearest_backward"),
    (lambda: nn.BatchNorm2d(2), (3, 2, 2, 2), "batch_norm_forward", "batch_norm_backward"),
]


@pytest.mark.parametrize("make,shape,forward,backward", LAYERS, ids=[f for _, _, f, _ in LAYERS])
def test_each_layer_calls_one_op_each_way(make, shape, forward, backward):
    layer = make().double()
    x = np.random.default_rng(0).standard_normal(shape)
    calls: list[str] = []
    with sn.override(**recording(calls)):
        y = layer(x)
        first = calls[0]
        n = len(calls)
        layer.backward(np.ones_like(y))
    assert first == forward and calls[n] == backward, calls
    if isinstance(layer, nn.BatchNorm2d):                 # and the running statistics
        assert calls[1:n] == ["batch_norm_update_stats"]


def test_the_loss_and_the_optimizer_call_their_ops():
    calls: list[str] = []
    p = nn.Parameter(np.ones(3))
    with sn.override(**recording(calls)):
        mse = nn.MSELoss()
        mse(np.ones((2, 3)), np.zeros((2, 3)))
        mse.backward()
        opt = optim.Adam([p])
        opt.zero_grad()
        opt.step()
    assert calls == ["mse_loss", "mean_square", "mse_backward", "zero_grads", "adam_update",
                     "adam_step"]


def test_an_override_runs_inside_the_library_layers_and_is_undone():
    seen = []

    def relu_backward(gy, x):
        seen.append(x.shape)
        return F.relu_backward(gy, x)                    # the library's, inside the override

    sn.manual_seed(0)
    model = UNet(2).double()
    x = np.random.default_rng(1).random((2, 1, 8, 8))
    with sn.override(relu_backward=relu_backward):
        model.backward(np.ones_like(model(x)))
    assert len(seen) == 10                               # every ReLU of the five blocks
    model.backward(np.ones_like(model(x)))
    assert len(seen) == 10 and ops.overrides() == {}


def test_overrides_nest_and_are_undone_after_an_error():
    def double(*args):
        return 2 * F.col2im(*args)

    col = np.random.default_rng(0).standard_normal((1, 2, 2, 2, 2, 1))
    plain = F.col2im(col, (1, 1), (0, 0), (3, 3))
    with pytest.raises(ZeroDivisionError):
        with sn.override(col2im=double):
            with sn.override(col2im=lambda *a: 3 * F.col2im(*a)):
                np.testing.assert_allclose(F.col2im(col, (1, 1), (0, 0), (3, 3)), 3 * plain)
            np.testing.assert_allclose(F.col2im(col, (1, 1), (0, 0), (3, 3)), 2 * plain)
            1 / 0
    np.testing.assert_array_equal(F.col2im(col, (1, 1), (0, 0), (3, 3)), plain)
    assert ops.overrides() == {}


def test_an_override_of_one_op_reaches_the_library_code_that_calls_it():
    """col2im replaced: the library's own conv2d_grad_input (and so nn.Conv2d) runs it."""
    calls = []

    def col2im(*args):
        calls.append(args[0].shape)
        return F.col2im(*args)

    gy, w = np.ones((2, 3, 4, 4)), np.ones((3, 2, 3, 3))
    with sn.override(col2im=col2im):
        F.conv2d_grad_input(gy, w, (6, 6), (1, 1), (0, 0))
    assert calls == [(2, 3, 3, 4, 4, 2)]


def test_bad_overrides_are_one_line_errors():
    with pytest.raises(ValueError, match=r"override: there is no op named 'relu_backwards'; the "
                                         r"ops are .*relu_backward"):
        with sn.override(relu_backwards=lambda gy, x: gy):
            pass
    with pytest.raises(TypeError, match="override: relu_backward must be a function, got int"):
        with sn.override(relu_backward=3):
            pass


def test_faster_bodies_are_off_under_an_override(rng):
    layer = nn.Conv2d(2, 2, 3, padding=1)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    previous = blocked.use_blocked_cpu("always")
    try:
        layer(x)
        assert isinstance(layer._cache[0], blocked.PaddedInput)
        with sn.override(relu=F.relu):
            layer(x)
            assert layer._cache[0].ndim == 6                  # im2col: the readable path
    finally:
        blocked.use_blocked_cpu(previous)


def test_every_faster_body_belongs_to_an_op_and_takes_its_arguments():
    bodies = [(name, b.fn) for name, bs in ops._faster.items() for b in bs]
    assert len(bodies) >= 17
    for name, body in bodies:
        assert name in ops.OPS, f"a faster body is registered for {name!r}, which is no op"
        if not isinstance(body, type(F.relu)):              # a partial of batch_last_apply
            continue
        op_params = list(inspect.signature(ops.reference(name)).parameters)
        assert list(inspect.signature(body).parameters) == op_params, name


def test_no_cuda_c_outside_the_kernels():
    markers = ("__global__", "ElementwiseKernel", "RawKernel", "ElementwiseOp(", "RawOp(")
    for path in PKG.rglob("*.py"):
        if path.parent.name == "kernels" or path.name == "__init__.py" and "kernels" in path.parts:
            continue
        text = path.read_text()
        found = [m for m in markers if m in text]
        assert not found, f"{path.relative_to(PKG)} holds CUDA C ({found}); it belongs in kernels/"


def test_the_blocked_path_uses_public_helpers_and_never_calls_back_up():
    tree = ast.parse((PKG / "blocked.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "typing", "backend", "layout", "ops",
                        "threads"}, imported
    assert "_batch_last" not in (PKG / "blocked.py").read_text()


def test_backend_names_are_normalised_once():
    from scratchnet.backend import canonical_name
    assert {canonical_name(n) for n in ("numpy", "CPU", "np")} == {"numpy"}
    assert {canonical_name(n) for n in ("cupy", "CUDA", "gpu", "cp")} == {"cupy"}
    with pytest.raises(ValueError, match="unknown backend 'tpu'; expected 'numpy' or 'cupy'"):
        canonical_name("tpu")


def test_the_old_names_still_import_from_backend():
    from scratchnet import backend, kernels, random, threads
    assert backend.default_rng is random.default_rng and backend.manual_seed is random.manual_seed
    assert backend.retain_freed_host_memory is threads.retain_freed_host_memory
    assert backend.use_blocked_cpu is blocked.use_blocked_cpu
    assert backend.use_fused_kernels is kernels.use_fused_kernels
    with pytest.raises(AttributeError, match="has no attribute 'free_memory'"):
        backend.free_memory


def test_the_kernels_docstring_lists_every_op_a_kernel_speeds_up():
    import re
    from scratchnet import kernels
    listed = set(re.findall(r"`(\w+)`", "".join(
        line.split("|")[2] for line in kernels.__doc__.splitlines() if line.startswith("| `kernels.")))
    )
    fast = {name for name, bodies in ops._faster.items() if bodies}
    assert listed == fast - {"conv2d_forward", "conv2d_backward"}, (listed, fast)   # + blocked's
