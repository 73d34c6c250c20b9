"""Training-health diagnostics: is each layer alive, and is each weight learning at a sane rate?

The plots Karpathy draws by hand in makemore part 3, collected by hooks on any model:

    diag = diagnostics.watch(model, every=10)      # hooks on the model; nothing else changes
    for x, y in loader:
        opt.zero_grad()
        loss = criterion(model(x), y)
        model.backward(criterion.backward())
        opt.step()
        diag.step()                                 # once per optimizer step
    print(diag.summary())                           # the latest sample, one line per layer
    diag.plot("health.png")                         # six panels, see plot()
    diag.remove()                                   # or: with diagnostics.watch(...) as diag:

Every ``every``-th step (the first one included) it records:

* per watched layer (by default every activation: ReLU, LeakyReLU, Sigmoid, Tanh), from
  its forward output: mean, std and the *saturated* share. For ReLU that is the share of
  outputs at 0, with ``dead``: the share of units (channels of a conv map, features of a
  vector) at 0 for every example and position of the batch, which get no gradient at all;
  LeakyReLU: the share on the negative side; Tanh: ``|y| > 0.97``; Sigmoid: ``y < 0.015`` or
  ``y > 0.985`` (the same points as tanh's, as ``sigmoid(x) = (1 + tanh(x/2)) / 2``), where
  the derivative is below a twentieth of its peak;
* per watched layer, from its backward: the std of the gradient arriving at its output;
* per parameter (with ``requires_grad``): the std of its gradient, ``std(grad) / std(data)``,
  and the update-to-data ratio ``log10(std(update) / std(data))`` of the optimizer step
  just taken (the actual change of the parameter, so it is right for Adam too). Around -3
  is Karpathy's rule of thumb: much lower and the layer learns slowly, much higher and the
  steps are too large for its weights.

Statistics are computed on the arrays' backend and read back as a handful of numbers per
layer; on the other steps the hooks do nothing but count. Histograms of the latest sample
are kept for the plot.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable, Sequence

import numpy

from .backend import get_array_module, to_numpy
from .nn.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from .nn.module import Module, RemovableHandle, is_grad_enabled

Array = Any

__all__ = ["Diagnostics", "watch"]

ACTIVATIONS = (ReLU, LeakyReLU, Sigmoid, Tanh)
_BINS = 50
_HIST_SAMPLE = 1 << 15


def _saturation(module: Module, y: Array) -> tuple[Array, Array | None]:
    """(saturated share, dead share or None) of a layer's output, as 0-d arrays."""
    xp = get_array_module(y)
    if isinstance(module, ReLU):
        off = y <= 0
        axes = tuple(i for i in range(y.ndim) if i != 1) if y.ndim > 1 else ()
        dead = off.all(axis=axes).mean() if axes else off.mean()
        return off.mean(), dead
    if isinstance(module, LeakyReLU):
        return (y < 0).mean(), None
    if isinstance(module, Tanh):
        return (abs(y) > 0.97).mean(), None
    if isinstance(module, Sigmoid):
        return ((y < 0.015) | (y > 0.985)).mean(), None
    return xp.asarray(math.nan), None


def _histogram(a: Array) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(counts, bin edges) of ``a`` over its own range, read back to the host. A large
    array is sampled at an even stride (at most ``_HIST_SAMPLE`` values): the figure shows
    shares, which that estimates well, at a fraction of the cost."""
    xp = get_array_module(a)
    if a.size > _HIST_SAMPLE:
        a = a.reshape(-1)[::a.size // _HIST_SAMPLE]
    lo, hi = (float(v) for v in to_numpy(xp.stack([a.min(), a.max()])))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return numpy.zeros(0), numpy.zeros(1)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    bins = int(min(_BINS, max(10, a.size // 20)))   # a small weight gets fewer, fuller bins
    counts, edges = xp.histogram(a, bins=bins, range=(lo, hi))
    return to_numpy(counts), to_numpy(edges)


def _std(a: Array) -> Array:
    return a.std() if a.size else get_array_module(a).asarray(math.nan)


class Diagnostics:
    """Hooks on a model that sample activation, gradient and update statistics.

    Made by `watch`; call `step()` once per optimizer step.

    Attributes:
        steps: the step numbers sampled so far (``0, every, 2 * every, ...``).
        layers: per watched layer name, a dict of lists, one entry per sampled step:
            "mean", "std", "saturated", "dead" (NaN where it does not apply) and
            "grad_std" (NaN if no backward ran on that step).
        params: per parameter name, lists "grad_std", "grad_to_data" and "update_ratio"
            (the log10 ratio; NaN where the data's std is 0 or no update was seen).
        every: the sampling period, in steps.
        step_count: the number of ``step()`` calls so far (settable: a resumed run sets it to
            the steps already taken, so that its samples fall on the same steps).
    """

    def __init__(self, model: Module, every: int = 10, layers: str | Sequence[str] = "activations"):
        if not isinstance(model, Module):
            raise TypeError(f"diagnostics.watch: expected a Module, got {type(model).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"diagnostics.watch: every must be a positive int, got {every!r}")
        self.model, self.every = model, every
        named = dict(model.named_modules())
        if layers == "activations":
            chosen = [n for n, m in named.items() if isinstance(m, ACTIVATIONS)]
        elif layers == "all":
            chosen = [n for n, m in named.items() if not m._modules and n]
        elif isinstance(layers, str):
            raise ValueError(f"diagnostics.watch: layers must be 'activations', 'all' or a list of "
                             f"module names, got {layers!r}")
        else:
            chosen = list(layers)
            missing = [n for n in chosen if n not in named]
            if missing:
                raise ValueError(f"diagnostics.watch: the model has no module named {missing}; "
                                 f"its modules are {[n for n in named if n]}")
        self._names = {id(named[n]): n for n in chosen}
        self.steps: list[int] = []
        self.layers = {n: dict(mean=[], std=[], saturated=[], dead=[], grad_std=[]) for n in chosen}
        self.params: dict[str, dict[str, list[float]]] = {}
        self.histograms: dict[str, dict[str, tuple[numpy.ndarray, numpy.ndarray]]] = {
            "activation": {}, "gradient": {}, "weight_grad": {}}
        self.step_count = 0
        self._snapshot: dict[str, Array] | None = None
        self._grads_read = False
        self._handles: list[RemovableHandle] = []
        for n in chosen:
            m = named[n]
            self._handles.append(m.register_forward_hook(self._on_forward))
            self._handles.append(m.register_full_backward_hook(self._on_backward))
        self._handles.append(model.register_forward_pre_hook(self._on_model_forward))
        self._handles.append(model.register_full_backward_hook(self._on_model_backward))

    # --- sampling ------------------------------------------------------------------------
    @property
    def sampling(self) -> bool:
        """Whether the current step is one that is recorded."""
        return self.step_count % self.every == 0

    def _recording(self) -> bool:
        return self.sampling and is_grad_enabled()

    def _open(self) -> int:
        """The index of this step's sample, adding it on first use."""
        if not self.steps or self.steps[-1] != self.step_count:
            self.steps.append(self.step_count)
            for row in self.layers.values():
                for values in row.values():
                    values.append(math.nan)
            for row in self.params.values():
                for values in row.values():
                    values.append(math.nan)
        return len(self.steps) - 1

    def _on_model_forward(self, model: Module, args: tuple) -> None:
        if model is self.model and self._recording() and self._snapshot is None:
            self._open()
            self._snapshot = {n: p.data.copy() for n, p in model.named_parameters() if p.requires_grad}

    def _on_forward(self, module: Module, args: tuple, out: Array) -> None:
        name = self._names.get(id(module))
        if name is None or not self._recording() or not hasattr(out, "dtype"):
            return
        i, row = self._open(), self.layers[name]
        if not math.isnan(row["mean"][i]):
            return                                       # the first forward of the step counts
        xp = get_array_module(out)
        saturated, dead = _saturation(module, out)
        values = [out.mean(), _std(out), saturated, xp.asarray(math.nan) if dead is None else dead]
        mean, std, sat, dead = (float(v) for v in to_numpy(xp.stack([xp.asarray(v, dtype="float64")
                                                                    for v in values])))
        row["mean"][i], row["std"][i], row["saturated"][i], row["dead"][i] = mean, std, sat, dead
        self.histograms["activation"][name] = _histogram(out)

    def _on_backward(self, module: Module, grad_input: tuple, grad_output: tuple) -> None:
        name = self._names.get(id(module))
        if name is None or not self.sampling or not grad_output or not hasattr(grad_output[0], "dtype"):
            return
        i, row = self._open(), self.layers[name]
        if math.isnan(row["grad_std"][i]):
            row["grad_std"][i] = float(_std(grad_output[0]))
            self.histograms["gradient"][name] = _histogram(grad_output[0])

    def _on_model_backward(self, model: Module, grad_input: tuple, grad_output: tuple) -> None:
        if model is self.model and self.sampling:
            self._read_grads()

    def _read_grads(self) -> None:
        """Gradient statistics of every trained parameter (once per sampled step)."""
        if self._grads_read:
            return
        self._grads_read = True
        i = self._open()
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            row = self._param_row(name)
            xp = get_array_module(p.grad)
            g_std, d_std = (float(v) for v in to_numpy(xp.stack([_std(p.grad), _std(p.data)])))
            row["grad_std"][i] = g_std
            row["grad_to_data"][i] = g_std / d_std if d_std > 0 else math.nan
            if p.ndim >= 2:
                self.histograms["weight_grad"][name] = _histogram(p.grad)

    def _param_row(self, name: str) -> dict[str, list[float]]:
        if name not in self.params:
            n = len(self.steps)
            self.params[name] = dict(grad_std=[math.nan] * n, grad_to_data=[math.nan] * n,
                                     update_ratio=[math.nan] * n)
        return self.params[name]

    def step(self) -> None:
        """Call after ``optimizer.step()``: records the update-to-data ratios of a sampled
        step (the parameters against their values at this step's forward) and moves on."""
        if self._snapshot is not None:
            self._read_grads()                       # if backward did not go through the model
            i = len(self.steps) - 1
            for name, p in self.model.named_parameters():
                before = self._snapshot.get(name)
                if before is None:
                    continue
                xp = get_array_module(before)
                u_std, d_std = (float(v) for v in to_numpy(xp.stack([_std(p.data - before),
                                                                     _std(before)])))
                ratio = u_std / d_std if d_std > 0 else math.nan
                self._param_row(name)["update_ratio"][i] = math.log10(ratio) if ratio > 0 else math.nan
        self._snapshot, self._grads_read = None, False
        self.step_count += 1

    def remove(self) -> None:
        """Remove every hook; the recorded statistics stay."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> "Diagnostics":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    # --- reading -------------------------------------------------------------------------
    def summary(self) -> str:
        """The latest sample as a table: one line per watched layer, then one per parameter."""
        if not self.steps:
            return "diagnostics: nothing sampled yet (call diag.step() after each optimizer step)"
        i = len(self.steps) - 1
        lines = [f"step {self.steps[i]}",
                 f"{'layer':<24} {'mean':>8} {'std':>8} {'saturated':>9} {'dead':>6} {'grad std':>9}"]
        for name, row in self.layers.items():
            lines.append(f"{name + ' (' + type(self.model.get_submodule(name)).__name__ + ')':<24} "
                         f"{row['mean'][i]:>8.3f} {row['std'][i]:>8.3f} "
                         f"{_percent(row['saturated'][i]):>9} {_percent(row['dead'][i]):>6} "
                         f"{row['grad_std'][i]:>9.2e}")
        lines.append(f"{'parameter':<24} {'grad std':>9} {'grad/data':>10} {'log10 update/data':>18}")
        for name, row in self.params.items():
            lines.append(f"{name:<24} {row['grad_std'][i]:>9.2e} {row['grad_to_data'][i]:>10.2e} "
                         f"{row['update_ratio'][i]:>18.2f}")
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike | None = None, title: str = "training health") -> Any:
        """Six panels: the latest sample's histograms of activations, of the gradients at the
        layers' outputs and of the weights' gradients (top); activation std, saturated share
        and the weights' log10 update-to-data ratio over training, with a line at -3
        (bottom). Weights are the parameters with 2 or more dimensions, as in makemore.

        Args:
            path: where to write the PNG (atomically); None only returns the figure.
            title: the figure's title.

        Returns:
            The matplotlib Figure (closed when written to ``path``).
        """
        from .plotting import plt, save_figure      # matplotlib on demand, with the Agg backend
        fig, axes = plt.subplots(2, 3, figsize=(17, 8.5), layout="constrained")
        (h_act, h_grad, h_wgrad), (t_std, t_sat, t_upd) = axes
        i = len(self.steps) - 1
        for name, (counts, edges) in self.histograms["activation"].items():
            row = self.layers[name]
            label = (f"{name} ({type(self.model.get_submodule(name)).__name__}): mean "
                     f"{row['mean'][i]:+.2f}, std {row['std'][i]:.2f}, saturated "
                     f"{_percent(row['saturated'][i])}")
            h_act.plot((edges[:-1] + edges[1:]) / 2, counts / max(counts.sum(), 1), label=label)
        for name, (counts, edges) in self.histograms["gradient"].items():
            h_grad.plot((edges[:-1] + edges[1:]) / 2, counts / max(counts.sum(), 1),
                        label=f"{name}: std {self.layers[name]['grad_std'][i]:.2e}")
        for name, (counts, edges) in self.histograms["weight_grad"].items():
            row = self.params[name]
            h_wgrad.plot((edges[:-1] + edges[1:]) / 2, counts / max(counts.sum(), 1),
                         label=f"{name}: std {row['grad_std'][i]:.1e}, grad/data "
                               f"{row['grad_to_data'][i]:.1e}")
        for name, row in self.layers.items():
            t_std.plot(self.steps, row["std"], label=name)
            if not all(math.isnan(v) for v in row["saturated"]):
                t_sat.plot(self.steps, numpy.asarray(row["saturated"]) * 100, label=f"{name} saturated")
            if not all(math.isnan(v) for v in row["dead"]):
                t_sat.plot(self.steps, numpy.asarray(row["dead"]) * 100, ls="--", label=f"{name} dead")
        ndim = {name: p.ndim for name, p in self.model.named_parameters()}
        for name, row in self.params.items():
            if ndim.get(name, 0) >= 2:
                t_upd.plot(self.steps, row["update_ratio"], label=name)
        t_upd.axhline(-3, color="black", ls=":", lw=1, label="-3 (rule of thumb)")
        panels = [(h_act, "activation distribution (latest sample)", "value", "share"),
                  (h_grad, "gradient at each layer's output (latest)", "value", "share"),
                  (h_wgrad, "weight gradient distribution (latest)", "value", "share"),
                  (t_std, "activation std over training", "step", "std"),
                  (t_sat, "saturated / dead share over training", "step", "%"),
                  (t_upd, "update-to-data ratio, log10 std(update)/std(data)", "step", "log10")]
        for ax, name, xlabel, ylabel in panels:
            ax.set_title(name, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        fig.suptitle(f"{title} (every {self.every} steps, {len(self.steps)} samples)")
        if path is not None:
            save_figure(fig, path)
        return fig


def _percent(share: float) -> str:
    return "-" if math.isnan(share) else f"{100 * share:.1f}%"


def watch(model: Module, every: int = 10, layers: str | Iterable[str] = "activations") -> Diagnostics:
    """Attach training-health hooks to ``model`` (see the module docstring).

    Args:
        model: the model trained; its forward and backward are watched through hooks.
        every: sample every ``every``-th optimizer step (``diag.step()`` counts them).
        layers: "activations" (every ReLU, LeakyReLU, Sigmoid and Tanh), "all" (every
            module without sub-modules) or a list of module names (``model.named_modules``).

    Returns:
        A `Diagnostics`: call ``step()`` after each optimizer step, then read
        ``summary()``, ``plot()`` or its ``layers`` / ``params`` lists; ``remove()`` (or a
        ``with`` block) takes the hooks off.
    """
    return Diagnostics(model, every, layers if isinstance(layers, str) else list(layers))
