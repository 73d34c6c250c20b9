"""The PyTorch Module API a port reaches for: apply, modules, named_children, requires_grad_,
Identity, ModuleList, forward and backward hooks (against PyTorch's), and the messages for
the traps of manual backward (no backward written; one layer used twice)."""
import copy

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.backend import to_numpy


def _net():
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(2, 1, 3, padding=1), nn.Sigmoid()))


def test_modules_children_and_apply_in_pytorch_order():
    net = _net()
    assert [type(m).__name__ for m in net.modules()] == [
        "Sequential", "Conv2d", "ReLU", "Sequential", "Conv2d", "Sigmoid"]
    assert [n for n, _ in net.named_children()] == ["0", "1", "2"]
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Conv2d", "ReLU", "Conv2d", "Sigmoid", "Sequential", "Sequential"]
    assert net.get_submodule("2.0") is net[2][0]
    with pytest.raises(AttributeError, match="no sub-module '5'"):
        net.get_submodule("2.5")


def test_a_module_held_twice_is_listed_once():
    relu = nn.ReLU()
    net = nn.Sequential(relu, nn.Identity())
    net.again = relu
    assert sum(m is relu for m in net.modules()) == 1
    assert [n for n, _ in net.named_children()] == ["0", "1"]


def test_apply_initialises_like_a_pytorch_port():
    def init_weights(m):
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)

    net = _net().apply(init_weights)
    assert not net[0].bias.data.any() and not net[2][0].bias.data.any()


def test_requires_grad_and_numel():
    net = _net()
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    net[0].requires_grad_()
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, False]
    assert net[0].weight.numel() == 18 and "requires_grad=False" in repr(net[2][0].weight)


def test_grad_is_never_none_and_keeps_its_shape():
    p = nn.Parameter(np.ones((2, 3), dtype=np.float32))
    p.grad += 5
    buffer = p.grad
    p.grad = None                                    # PyTorch's idiom: clears it
    assert p.grad is buffer and not p.grad.any()
    with pytest.raises(ValueError, match=r"shape \(2, 3\), got \(3,\)"):
        p.grad = np.zeros(3, dtype=np.float32)


def test_identity_and_module_list():
    layers = nn.ModuleList([nn.Conv2d(1, 2, 3), nn.ReLU()])
    layers.append(nn.Identity(54, unused=0.1))        # PyTorch's Identity ignores arguments
    layers.insert(1, nn.Conv2d(2, 2, 1))
    layers += [nn.Sigmoid()]
    assert [type(m).__name__ for m in layers] == ["Conv2d", "Conv2d", "ReLU", "Identity", "Sigmoid"]
    assert len(layers) == 5 and isinstance(layers[-1], nn.Sigmoid)
    assert [type(m).__name__ for m in layers[1:3]] == ["Conv2d", "ReLU"]
    del layers[2]
    layers[2] = nn.Tanh()
    assert [type(m).__name__ for m in layers] == ["Conv2d", "Conv2d", "Tanh", "Sigmoid"]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = layers

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

        def backward(self, g):
            for layer in reversed(list(self.layers)):
                g = layer.backward(g)
            return g

    net = Net()
    assert list(net.state_dict()) == ["layers.0.weight", "layers.0.bias", "layers.1.weight",
                                      "layers.1.bias"]
    sn.gradcheck(net, np.random.default_rng(0).standard_normal((2, 1, 5, 5)))
    with pytest.raises(NotImplementedError, match="ModuleList is a container, not a layer: it has "
                                                  "no backward.*reverse order"):
        layers.backward(np.zeros(1))
    with pytest.raises(NotImplementedError, match="no forward"):
        layers(np.zeros(1))
    with pytest.raises(IndexError, match="index 4 is out of range for 4 modules"):
        layers[4]
    with pytest.raises(TypeError, match="entry 4 is a int"):
        layers.append(3)
    x = np.ones((1, 2))
    assert nn.Identity()(x) is x and nn.Identity().backward(x) is x


def test_custom_module_without_backward_says_what_to_write():
    class AE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.dec = nn.Linear(4, 2), nn.Linear(2, 4)

        def forward(self, x):
            return self.dec(self.enc(x))

    model = AE()
    model(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(NotImplementedError, match=r"AE has no backward\(\).*in reverse order of "
                                                  r"forward.*gradcheck\(AE"):
        model.backward(np.ones((1, 4), dtype=np.float32))


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.relu = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3), nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))))

    def backward(self, g):
        g = self.conv2.backward(self.relu.backward(g))
        return self.conv1.backward(self.relu.backward(g))


def test_a_layer_used_twice_in_one_forward_is_named():
    x = np.ones((1, 1, 7, 7), dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"layer 'relu' \(ReLU\) of _Twice was called twice in "
                                           r"one forward pass.*its own instance"):
        _Twice()(x)
    with sn.no_grad():                               # nothing is cached: reuse is harmless
        _Twice()(x)
    relu = nn.ReLU()
    relu(x)
    relu(x)                                          # two top-level calls: the usual re-run
    relu.backward(x)


def test_a_layer_may_run_again_after_its_backward_within_one_call():
    class Unrolled(nn.Module):
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(x)
            self.relu.backward(np.ones_like(y))
            return self.relu(y)

    Unrolled()(np.ones((2, 2)))


def test_forward_hooks_see_and_may_replace_inputs_and_outputs():
    net, calls = _net(), []
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32)
    h1 = net[1].register_forward_pre_hook(lambda m, args: calls.append(("pre", args[0].shape)))
    h2 = net[1].register_forward_hook(lambda m, args, out: calls.append(("post", type(m).__name__,
                                                                          out.min() >= 0)))
    net(x)
    assert calls == [("pre", (2, 2, 4, 4)), ("post", "ReLU", True)]
    h1.remove()
    h2.remove()
    h2.remove()                                      # removing twice does nothing
    net(x)
    assert len(calls) == 2
    with net[2].register_forward_hook(lambda m, args, out: out * 0):
        assert not net(x).any()
    assert net(x).any()
    with net.register_forward_pre_hook(lambda m, args: args[0] * 0):
        assert np.allclose(net(x), net(np.zeros_like(x)))


def test_hooks_run_in_order_and_prepend():
    relu, order = nn.ReLU(), []
    relu.register_forward_hook(lambda *a: order.append("a"))
    relu.register_forward_hook(lambda *a: order.append("b"), prepend=True)
    relu(np.ones(2))
    assert order == ["b", "a"]


def test_backward_hooks_match_pytorch_full_backward_hooks():
    torch = pytest.importorskip("torch")
    sn.manual_seed(0)
    net = _net().double()
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Sequential(torch.nn.Conv2d(2, 1, 3, padding=1),
                                                   torch.nn.Sigmoid())).double()
    tnet.load_state_dict({k: torch.tensor(v) for k, v in net.state_dict().items()})
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((2, 1, 5, 5)), rng.standard_normal((2, 1, 5, 5))
    mine, theirs = {}, {}
    for name in ("1", "2.0", "2"):
        net.get_submodule(name).register_full_backward_hook(
            lambda m, gi, go, name=name: mine.__setitem__(name, (gi, go)))
        tnet.get_submodule(name).register_full_backward_hook(
            lambda m, gi, go, name=name: theirs.__setitem__(name, (gi, go)))
    net(x)
    net.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    tnet(tx).backward(torch.tensor(g))
    assert list(mine) == list(theirs) == ["2.0", "2", "1"]      # the order backward runs in
    for name in theirs:
        for a, b in zip(mine[name][0] + mine[name][1], theirs[name][0] + theirs[name][1]):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-10, atol=1e-12)


def test_backward_hooks_may_replace_gradients_and_run_whoever_calls_backward(xp):
    net = _net().to(xp.__name__)
    x = xp.asarray(np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype(np.float32))
    g = xp.ones((2, 1, 4, 4), dtype=xp.float32)
    net[1].register_full_backward_hook(lambda m, gi, go: (gi[0] * 0,))
    net(x)
    assert not to_numpy(net.backward(g)).any()       # zeroed below the ReLU
    assert not to_numpy(net[0].weight.grad).any()
    seen = []
    net[2][1].register_full_backward_pre_hook(lambda m, go: seen.append(go[0].shape) or go[0] * 2)
    net(x)
    net[2].backward(g)                                # called directly, not through net
    assert seen == [(2, 1, 4, 4)]


def test_a_backward_calling_super_runs_its_hooks_once():
    class Doubled(nn.ReLU):
        def backward(self, g):
            return 2 * super().backward(g)

    layer, calls = Doubled(), []
    layer.register_full_backward_hook(lambda m, gi, go: calls.append(gi[0].copy()))
    layer(np.array([1.0, -1.0]))
    out = layer.backward(np.array([1.0, 1.0]))
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], out)
    np.testing.assert_array_equal(out, [2.0, 0.0])


def test_backward_hook_of_a_multi_input_module_and_a_wrong_replacement():
    class Add(nn.Module):
        def forward(self, a, b):
            self._cache = True
            return a + b

        def backward(self, g):
            self._pop_cache(g)
            return g, g

    add = Add()
    add.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[1] * 3))
    add(np.ones(2), np.ones(2))
    ga, gb = add.backward(np.ones(2))
    np.testing.assert_array_equal(gb, [3.0, 3.0])
    add.register_full_backward_hook(lambda m, gi, go: gi[0])
    add(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="returned 1 gradients; backward returned 2"):
        add.backward(np.ones(2))


def test_hooked_model_still_gradchecks_and_deep_copies():
    net = _net()
    counts = []
    net[1].register_full_backward_hook(lambda m, gi, go: counts.append(1))
    sn.gradcheck(net, np.random.default_rng(0).standard_normal((1, 1, 4, 4)))
    assert counts                                    # the copy's hooks are the same functions
    clone = copy.deepcopy(net)
    assert len(clone[1]._backward_hooks) == 1
