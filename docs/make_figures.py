"""Draw the figures of the course in docs/learn/ into docs/images/learn/.

    python docs/make_figures.py                 # rewrite docs/images/learn/*.png
    python docs/make_figures.py --out /tmp/f    # somewhere else (the test does this)

Every figure that shows numbers computes them with the library (``scratchnet.functional``,
``scratchnet.nn``) and asserts that they agree with the definition the chapter gives, so a
figure cannot silently disagree with the code. Output is deterministic: fixed sizes, fixed
data, matplotlib's Agg backend, no timestamps in the files.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyBboxPatch, Rectangle  # noqa: E402

from scratchnet import functional as F  # noqa: E402
from scratchnet import nn  # noqa: E402

OUT = Path(__file__).resolve().parent / "images" / "learn"
DPI = 100
FORWARD, BACKWARD, SKIP, HIGHLIGHT = "#222222", "#c0392b", "#2471a3", "#f5b041"

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": DPI,
                     "savefig.dpi": DPI, "font.family": "DejaVu Sans"})


# --- drawing helpers -----------------------------------------------------------------------
def _box(ax, x, y, text, w=1.5, h=0.6, color="#eaf2f8", edge="#34495e", size=10):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                facecolor=color, edgecolor=edge, linewidth=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _arrow(ax, start, end, color=FORWARD, style="-|>", dashed=False, width=1.3, rad=0.0):
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle=style, color=color, linewidth=width,
                                linestyle="--" if dashed else "-",
                                connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))


def _grid(ax, values, title, fmt="{:g}", cmap="Greys", vmin=None, vmax=None, text_color=None,
          fontsize=10):
    """An array drawn as a table of numbers on a light colour scale."""
    values = np.asarray(values, dtype=float)
    ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, alpha=0.35)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                color=text_color or "black")
    ax.set_xticks(np.arange(-0.5, values.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, values.shape[0], 1), minor=True)
    ax.grid(which="minor", color="#7f8c8d", linewidth=0.8)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_title(title)


def _outline(ax, row, col, h, w, color, lw=2.5, dashed=False):
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), w, h, fill=False, edgecolor=color,
                           linewidth=lw, linestyle="--" if dashed else "-"))


def _blank(ax, xlim, ylim):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")


# --- chapter 1 -----------------------------------------------------------------------------
def fig_chain(path: Path) -> None:
    """Linear - ReLU - Linear - MSE: values forward, gradients backward, what each caches."""
    fig, ax = plt.subplots(figsize=(9.5, 3.0))
    _blank(ax, (-0.6, 10.6), (-1.6, 1.7))
    layers = [(1.6, "Linear(D, H)", "keeps x", "W1.grad += gzᵀ x"),
              (4.0, "ReLU", "keeps z > 0", ""),
              (6.4, "Linear(H, O)", "keeps a", "W2.grad += gyᵀ a"),
              (8.8, "MSELoss", "keeps y − t", "")]
    for x, name, keeps, grad in layers:
        _box(ax, x, 0, name, w=1.7)
        ax.text(x, -0.62, keeps, ha="center", va="top", fontsize=9, color="#566573",
                style="italic")
        if grad:
            ax.text(x, 0.62, grad, ha="center", va="bottom", fontsize=9, color=BACKWARD)
    centres = [layer[0] for layer in layers]
    # the arrow between two boxes (or before the first, after the last): value above, gradient below
    spans = [(-0.3, centres[0] - 0.9)] + [(a + 0.9, b - 0.9) for a, b in zip(centres, centres[1:])]
    spans.append((centres[-1] + 0.9, 10.3))
    for (left, right), value, grad in zip(spans, ["x", "z", "a", "y", "L"],
                                          ["gx", "gz", "ga", "gy", "1"]):
        _arrow(ax, (left, 0.12), (right, 0.12))
        _arrow(ax, (right, -0.12), (left, -0.12), color=BACKWARD)
        mid = (left + right) / 2
        ax.text(mid, 0.22, value, ha="center", va="bottom", fontsize=10)
        ax.text(mid, -0.22, grad, ha="center", va="top", fontsize=10, color=BACKWARD)
    ax.text(0, 1.45, "forward: left to right, each layer caches what its backward needs",
            fontsize=10, color=FORWARD)
    ax.text(0, -1.45, "backward: right to left, each layer returns the input gradient",
            fontsize=10, color=BACKWARD)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 2 -----------------------------------------------------------------------------
def fig_gradcheck_eps(path: Path) -> None:
    """Error of central and forward differences against the step, float64 and float32."""
    f = lambda x: np.exp(np.sin(x))                                   # noqa: E731
    exact = math.cos(0.7) * math.exp(math.sin(0.7))
    hs = np.logspace(-1, -12, 45)
    curves = {}
    for dtype in (np.float64, np.float32):
        x = dtype(0.7)
        central, forward = [], []
        for h in hs:
            h = dtype(h)
            if x + h == x:                          # the step vanished in this precision
                central.append(np.nan)
                forward.append(np.nan)
                continue
            central.append(abs(float((f(x + h) - f(x - h)) / (2 * h)) - exact))
            forward.append(abs(float((f(x + h) - f(x)) / h) - exact))
        curves[dtype.__name__] = (np.array(central), np.array(forward))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    floor = 1e-13
    for name, style in (("float64", "-"), ("float32", "--")):
        central, forward = curves[name]
        ax.loglog(hs, np.maximum(central, floor), style, color="#1f77b4", marker=".",
                  label=f"central, {name}")
        ax.loglog(hs, np.maximum(forward, floor), style, color="#ff7f0e", marker=".",
                  label=f"forward, {name}")
    ax.axvline(1e-6, color="#7f8c8d", linewidth=1.0, linestyle=":", label="h = 1e-6 (gradcheck)")
    ax.invert_xaxis()
    ax.set_xlabel("step h")
    ax.set_ylabel("|estimate − f'(x)|")
    ax.set_title("Finite differences of exp(sin x) at x = 0.7")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 3 -----------------------------------------------------------------------------
def fig_im2col(path: Path) -> None:
    """A 4x4 input, a 2x2 kernel, stride 1: the 4 x 9 column matrix, from F.im2col."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    col = F.im2col(x, (2, 2), (1, 1), (0, 0))                 # (C, KH, KW, OH, OW, N)
    assert col.shape == (1, 2, 2, 3, 3, 1)
    matrix = col.reshape(4, 9)                                  # (K, L*N)
    for i, j in np.ndindex(3, 3):                               # column (i, j) = its window
        assert np.array_equal(matrix[:, i * 3 + j], x[0, 0, i:i + 2, j:j + 2].ravel())
    hi, hj = 1, 2                                               # the highlighted window
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.0, 2.9), gridspec_kw={"width_ratios": [1, 2.4],
                                                                     "wspace": 0.25})
    _grid(a, x[0, 0], "input x (4×4), one 2×2 window", fmt="{:.0f}")
    _outline(a, hi, hj, 2, 2, HIGHLIGHT)
    _grid(b, matrix, "col: one column per output position (i, j)", fmt="{:.0f}")
    _outline(b, 0, hi * 3 + hj, 4, 1, HIGHLIGHT)
    b.set_yticks(range(4))
    b.set_yticklabels([f"{p},{q}" for p, q in np.ndindex(2, 2)], fontsize=8)
    b.set_ylabel("kernel offset (p, q)", fontsize=9)
    b.set_xticks(range(9))
    b.set_xticklabels([f"{i},{j}" for i, j in np.ndindex(3, 3)], fontsize=8)
    b.tick_params(labelbottom=True, labelleft=True)
    b.set_xlabel("output position (i, j)", fontsize=9)
    fig.text(0.5, -0.04,
             "y = W.reshape(OC, 4) @ col: every output of the batch in one matrix product",
             ha="center", fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 4 -----------------------------------------------------------------------------
def fig_conv_transpose_scatter(path: Path) -> None:
    """A 2x2 input stamps a 3x3 kernel at stride 2 onto a 5x5 output; padding 1 crops it."""
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    kernel = np.ones((3, 3))
    canvas = np.zeros((5, 5))
    for i, j in np.ndindex(2, 2):
        canvas[2 * i:2 * i + 3, 2 * j:2 * j + 3] += x[i, j] * kernel
    full = F.conv_transpose2d(x.reshape(1, 1, 2, 2), kernel.reshape(1, 1, 3, 3), None,
                              (2, 2), (0, 0))
    assert np.array_equal(full[0, 0], canvas)
    cropped = F.conv_transpose2d(x.reshape(1, 1, 2, 2), kernel.reshape(1, 1, 3, 3), None,
                                 (2, 2), (1, 1))
    assert np.array_equal(cropped[0, 0], canvas[1:4, 1:4])
    colors = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd"]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(9.0, 3.0),
                                  gridspec_kw={"width_ratios": [2, 3, 5]})
    _grid(a, x, "input (2×2)")
    for k, (i, j) in enumerate(np.ndindex(2, 2)):
        _outline(a, i, j, 1, 1, colors[k], lw=2.5)
    _grid(b, kernel, "kernel (3×3, ones)")
    _grid(c, canvas, "output: stamps at stride 2 add up")
    for k, (i, j) in enumerate(np.ndindex(2, 2)):
        off = 0.06 * (k - 1.5)
        c.add_patch(Rectangle((2 * j - 0.5 + off, 2 * i - 0.5 + off), 3, 3, fill=False,
                              edgecolor=colors[k], linewidth=2))
    _outline(c, 1, 1, 3, 3, "#7f8c8d", lw=1.5, dashed=True)
    c.text(2, 5.1, "dashed: what remains with padding = 1 (3×3)", ha="center", va="top",
           fontsize=8, color="#566573")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 5 -----------------------------------------------------------------------------
def fig_maxpool_routing(path: Path) -> None:
    """2x2 max pooling with ties: each gradient goes to its window's first maximum."""
    x = np.array([[3.0, 3.0, 0.0, 1.0],
                  [1.0, 3.0, 2.0, 2.0],
                  [0.0, 0.0, 5.0, 4.0],
                  [0.0, 0.0, 4.0, 5.0]])
    gy = np.array([[1.0, 2.0], [3.0, 4.0]])
    pool = nn.MaxPool2d(2).double()
    y = pool(x.reshape(1, 1, 4, 4))[0, 0]
    gx = pool.backward(gy.reshape(1, 1, 2, 2))[0, 0]
    winners = []
    for i, j in np.ndindex(2, 2):
        window = x[2 * i:2 * i + 2, 2 * j:2 * j + 2]
        p, q = np.unravel_index(np.argmax(window), window.shape)      # the first maximum
        winners.append((2 * i + p, 2 * j + q))
        assert y[i, j] == window.max() and gx[2 * i + p, 2 * j + q] == gy[i, j]
    assert np.count_nonzero(gx) == 4
    fig, axes = plt.subplots(1, 4, figsize=(10.0, 2.8), gridspec_kw={"width_ratios": [4, 2, 2, 4]})
    _grid(axes[0], x, "input x: 2×2 windows")
    for i, j in np.ndindex(2, 2):
        _outline(axes[0], 2 * i, 2 * j, 2, 2, "#34495e", lw=2)
    for r, c in winners:
        _outline(axes[0], r, c, 1, 1, HIGHLIGHT, lw=3)
    _grid(axes[1], y, "y = max")
    _grid(axes[2], gy, "upstream gy", text_color=BACKWARD)
    _grid(axes[3], gx, "gx: gy at each first maximum", text_color=BACKWARD)
    for r, c in winners:
        _outline(axes[3], r, c, 1, 1, HIGHLIGHT, lw=3)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 6 -----------------------------------------------------------------------------
def fig_batchnorm_graph(path: Path) -> None:
    """The stages of batch norm's forward pass; x and xc feed two nodes each."""
    fig, ax = plt.subplots(figsize=(10.0, 3.3))
    _blank(ax, (-0.9, 12.0), (-1.6, 2.0))
    nodes = {"x": (0, 0), "mu": (1.8, 1.2), "xc": (3.6, 0), "var": (5.4, 1.2),
             "std": (7.3, 1.2), "inv": (9.2, 1.2), "xhat": (9.2, 0), "y": (11.1, 0),
             "wb": (11.1, 1.2)}
    labels = {"x": "x\n(C, M)", "mu": "μ = mean(x)\n(C, 1)", "xc": "xc = x − μ\n(C, M)",
              "var": "σ² = mean(xc²)\n(C, 1)", "std": "d = √(σ² + ε)\n(C, 1)",
              "inv": "s = 1 / d\n(C, 1)", "xhat": "x̂ = xc · s\n(C, M)",
              "y": "y = γ x̂ + β\n(C, M)", "wb": "γ, β\n(C,)"}
    fan_out = {"x", "xc"}
    W = 1.6
    for key, (px, py) in nodes.items():
        _box(ax, px, py, labels[key], w=W, h=0.75, size=9,
             color="#fdebd0" if key in fan_out else ("#f2f3f4" if key == "wb" else "#eaf2f8"),
             edge=HIGHLIGHT if key in fan_out else "#34495e")
    edges = [("x", "mu"), ("x", "xc"), ("mu", "xc"), ("xc", "var"), ("var", "std"),
             ("std", "inv"), ("xc", "xhat"), ("inv", "xhat"), ("xhat", "y"), ("wb", "y")]

    def anchor(a, b):
        (ax0, ay0), (bx0, by0) = nodes[a], nodes[b]
        if ay0 == by0:
            return (ax0 + W / 2 + 0.05, ay0), (bx0 - W / 2 - 0.05, by0)
        if ax0 == bx0:
            return (ax0, ay0 - 0.42), (bx0, by0 + 0.42)
        up = by0 > ay0
        dy = 0.42 if up else -0.42
        return (ax0 + 0.45, ay0 + dy), (bx0 - 0.45, by0 - dy)

    for a, b in edges:
        _arrow(ax, *anchor(a, b))
    ax.text(0, -0.5, "feeds μ and xc", ha="center", va="top", fontsize=8, color="#b9770e")
    ax.text(3.6, -0.5, "feeds σ² and x̂", ha="center", va="top", fontsize=8, color="#b9770e")
    ax.text(-0.8, -1.35, "Backward: the graph in reverse. Where a node feeds two others "
            "(orange), its gradient is the sum of both;\na (C, 1) statistic, broadcast over "
            "the row in forward, gets a row sum in backward.", fontsize=9, color=BACKWARD,
            va="center")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 7 -----------------------------------------------------------------------------
def fig_unet_backward(path: Path) -> None:
    """The two-level U-Net: forward blocks, skip copies, and where backward splits and sums."""
    fig, ax = plt.subplots(figsize=(10.5, 4.4))
    _blank(ax, (-0.9, 14.4), (-0.4, 4.9))
    W, H = 1.25, 0.8
    pos = {"x": (0, 3.8), "e1": (1.8, 3.8), "e2": (3.8, 2.2), "b": (5.9, 0.6),
           "cat2": (8.0, 2.2), "d2": (9.8, 2.2), "cat1": (11.8, 3.8), "d1": (13.5, 3.8)}
    text = {"x": "x\n(1, H)", "e1": "e1\n(w, H)", "e2": "e2\n(2w, H/2)", "b": "b\n(4w, H/4)",
            "cat2": "cat\n(4w, H/2)", "d2": "d2\n(2w, H/2)", "cat1": "cat\n(2w, H)",
            "d1": "d1, out,\nsigmoid → y"}
    for key, (px, py) in pos.items():
        color = ("#fdebd0" if key in ("e1", "e2") else
                 "#e8daef" if key.startswith("cat") else "#eaf2f8")
        _box(ax, px, py, text[key], w=W if key != "d1" else 1.45, h=H, size=9, color=color,
             edge=HIGHLIGHT if key in ("e1", "e2") else "#34495e")

    def link(a, b, label=""):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        if y0 == y1:
            start, end = (x0 + W / 2 + 0.05, y0), (x1 - W / 2 - 0.05, y1)
        else:
            sy = -1 if y1 < y0 else 1
            start, end = (x0 + 0.3, y0 + sy * H / 2), (x1 - 0.3, y1 - sy * H / 2)
        _arrow(ax, start, end)
        if label:
            ax.text((start[0] + end[0]) / 2 + 0.12, (start[1] + end[1]) / 2, label,
                    fontsize=8, ha="left", va="center", color="#34495e")

    link("x", "e1")
    link("e1", "e2", "pool1")
    link("e2", "b", "pool2")
    link("b", "cat2", "u2")
    link("cat2", "d2")
    link("d2", "cat1", "u1")
    link("cat1", "d1")
    for a, b, y in (("e1", "cat1", 3.8), ("e2", "cat2", 2.2)):
        _arrow(ax, (pos[a][0] + W / 2 + 0.05, y + 0.15), (pos[b][0] - W / 2 - 0.05, y + 0.15),
               color=SKIP, dashed=True)
    ax.text(6.8, 3.98, "skip: e1 is copied to the outer concatenation", ha="center",
            va="bottom", fontsize=8, color=SKIP)
    ax.text(5.9, 2.38, "skip: e2 copied", ha="center", va="bottom", fontsize=8, color=SKIP)
    red = dict(fontsize=8, color=BACKWARD)
    ax.text(11.8, 4.3, "backward: split\ng[:, :w] → u1,  g[:, w:] → e1", va="bottom",
            ha="center", **red)
    ax.text(8.2, 1.7, "backward: split\ng[:, :2w] → u2,  g[:, 2w:] → e2", va="top", ha="left",
            **red)
    ax.text(1.8, 4.3, "backward: sum of the gradients\nfrom pool1 and from the skip",
            va="bottom", ha="center", **red)
    ax.text(3.75, 1.7, "backward: sum of the gradients\nfrom pool2 and from the skip",
            va="top", ha="right", **red)
    ax.text(-0.8, -0.3, "(channels, size) for an input of size H and a width w; pool: 2×2 max "
            "pooling; u: 2×2 stride-2 transposed convolution; e1, e2, b, d2, d1: conv_blocks",
            fontsize=8, color="#566573")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --- chapter 8 -----------------------------------------------------------------------------
def fig_adam_bias_correction(path: Path) -> None:
    """Adam's moments for a constant gradient g = 1, raw and bias-corrected."""
    beta1, beta2, steps = 0.9, 0.999, 3000
    t = np.arange(1, steps + 1)
    m = 1 - beta1 ** t                     # m_t for g = 1, from m_0 = 0
    v = 1 - beta2 ** t
    mr, vr = 0.0, 0.0                      # the same by the recurrence, as Adam computes it
    for k in range(steps):
        mr = beta1 * mr + (1 - beta1)
        vr = beta2 * vr + (1 - beta2)
        assert abs(mr - m[k]) < 1e-12 and abs(vr - v[k]) < 1e-12
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 3.2))
    a.semilogx(t, m, color="#1f77b4", label="m (raw)")
    a.semilogx(t, np.sqrt(v), color="#ff7f0e", label="√v (raw)")
    a.semilogx(t, m / (1 - beta1 ** t), "--", color="#1f77b4", label="m̂ (corrected)")
    a.semilogx(t, np.sqrt(v / (1 - beta2 ** t)), ":", color="#ff7f0e", linewidth=2,
               label="√v̂ (corrected)")
    a.set_title("moments for a constant gradient g = 1")
    a.set_xlabel("step t")
    a.legend(fontsize=8)
    a.grid(True, alpha=0.3)
    b.semilogx(t, m / np.sqrt(v), color=BACKWARD, label="m / √v (raw)")
    b.semilogx(t, np.ones_like(t, dtype=float), "--", color="#2c3e50",
               label="m̂ / √v̂ (corrected)")
    k = int(np.argmax(m / np.sqrt(v)))
    b.annotate(f"{(m / np.sqrt(v))[k]:.1f}× at t = {t[k]}", xy=(t[k], (m / np.sqrt(v))[k]),
               xytext=(60, 5.2), fontsize=8, arrowprops=dict(arrowstyle="->", color="#566573"))
    b.set_title("the step's size relative to η")
    b.set_xlabel("step t")
    b.set_ylim(0, 7.2)
    b.legend(fontsize=8, loc="upper right")
    b.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


FIGURES: dict[str, Callable[[Path], None]] = {
    "chain.png": fig_chain,
    "gradcheck_eps.png": fig_gradcheck_eps,
    "im2col.png": fig_im2col,
    "conv_transpose_scatter.png": fig_conv_transpose_scatter,
    "maxpool_routing.png": fig_maxpool_routing,
    "batchnorm_graph.png": fig_batchnorm_graph,
    "unet_backward.png": fig_unet_backward,
    "adam_bias_correction.png": fig_adam_bias_correction,
}


def main(out: str | Path = OUT) -> list[Path]:
    """Draw every figure into ``out``; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in FIGURES.items():
        path = out / name
        draw(path)
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(OUT), help=f"output folder (default: {OUT})")
    for path in main(parser.parse_args().out):
        print(path)
