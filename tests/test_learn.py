"""The grader graded: ``python -m scratchnet.learn`` (scratchnet/learn/).

* correct solutions, written out in plain NumPy as a learner would write them, pass every
  exercise; the library's own functions, imported or rebuilt from its code, are flagged;
* a planted wrong solution gets the diagnosis meant for its mistake, one test per diagnosis;
* ``new`` refuses a folder that is not empty and never overwrites; an untouched stub is "not
  written yet" (exit 1); a learner's exception is shown at the learner's file and line; a bad
  command line exits 2 in one line;
* the learner's functions run inside the library's own layers (``scratchnet.override``), and
  the learn package defines no layers of its own;
* the capstone trains the conv autoencoder and the U-Net with the learner's functions and
  agrees with the library (real MNIST), beats the three baselines and writes its figure,
  refuses while exercises fail, and names the layer and the exercise to look at when the
  curves diverge.
"""
from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn, ops
from scratchnet.learn import EXERCISES, format_result, grade, grade_exercise, learner_overrides
from scratchnet.learn import capstone, cli
from scratchnet.learn.diagnose import Context, compare, diagnose
from scratchnet.learn.grader import learner_code, load_functions


def run_cli(*args: object, cwd: Path | None = None, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scratchnet.learn", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, **(env or {})})


def flat(text: str) -> str:
    """The report with its line wrapping undone (long rows are wrapped at 120 columns)."""
    return " ".join(text.split())


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip())
    return folder


# --- correct solutions, as a learner would write them ------------------------------------
SOLUTIONS = {
    "linear.py": """
        def linear_backward(gy, x, weight):
            return gy @ weight, gy.T @ x, gy.sum(axis=0)
        """,
    "relu.py": """
        def relu_backward(gy, x):
            return gy * (x > 0)
        """,
    "sigmoid.py": """
        def sigmoid_backward(gy, y):
            return gy * y * (1 - y)
        """,
    "mse.py": """
        def mse_backward(diff, grad_output):
            return diff * (2.0 / diff.size) * grad_output
        """,
    "cross_entropy.py": """
        import numpy as np


        def cross_entropy(input, target):
            m = input.max(axis=1, keepdims=True)
            logp = input - m - np.log(np.exp(input - m).sum(axis=1, keepdims=True))
            return -logp[np.arange(len(target)), target].mean(), np.exp(logp)


        def cross_entropy_backward(probs, target, grad_output):
            d = probs.copy()
            d[np.arange(len(target)), target] -= 1
            return d * grad_output / len(target)
        """,
    "conv2d_grad_weight.py": """
        def conv2d_grad_weight(gy, col):
            C, KH, KW, OH, OW, N = col.shape
            OC = gy.shape[1]
            g = gy.transpose(1, 2, 3, 0).reshape(OC, -1)          # (OC, OH*OW*N): batch last
            return (g @ col.reshape(C * KH * KW, -1).T).reshape(OC, C, KH, KW)
        """,
    "col2im.py": """
        import numpy as np


        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            xpad = np.zeros((N, C, H + 2 * PH + KH, W + 2 * PW + KW))
            block = col.transpose(5, 0, 1, 2, 3, 4)                # (N, C, KH, KW, OH, OW)
            for i in range(KH):
                for j in range(KW):
                    xpad[:, :, i:i + SH * OH:SH, j:j + SW * OW:SW] += block[:, :, i, j]
            return xpad[:, :, PH:PH + H, PW:PW + W]
        """,
    "conv2d_grad_input.py": """
        from col2im import col2im          # the learner's own col2im, next to this file


        def conv2d_grad_input(gy, weight, size, stride, padding):
            OC, C, KH, KW = weight.shape
            N, _, OH, OW = gy.shape
            g = gy.transpose(1, 2, 3, 0).reshape(OC, -1)
            dcol = (weight.reshape(OC, -1).T @ g).reshape(C, KH, KW, OH, OW, N)
            return col2im(dcol, stride, padding, size)
        """,
    "conv_transpose2d.py": """
        import numpy as np


        def conv_transpose2d_backward(gy, x, weight, stride, padding):
            C_in, C_out, KH, KW = weight.shape
            N, _, H, W = x.shape
            (SH, SW), (PH, PW) = stride, padding
            gpad = np.pad(gy, ((0, 0), (0, 0), (PH, PH + SH), (PW, PW + SW)))
            xm = x.transpose(1, 0, 2, 3).reshape(C_in, -1)
            dx = np.zeros((C_in, N * H * W))
            dweight = np.zeros(weight.shape)
            for i in range(KH):
                for j in range(KW):
                    patch = gpad[:, :, i:i + SH * H:SH, j:j + SW * W:SW]  # (N, C_out, H, W)
                    pm = patch.transpose(1, 0, 2, 3).reshape(C_out, -1)
                    dx += weight[:, :, i, j] @ pm
                    dweight[:, :, i, j] = xm @ pm.T
            dx = dx.reshape(C_in, N, H, W).transpose(1, 0, 2, 3)
            return dx, dweight, gy.sum(axis=(0, 2, 3))
        """,
    "max_pool2d.py": """
        import numpy as np


        def max_pool2d_backward(gy, argmax, kernel, stride, padding, size):
            N, C, OH, OW = gy.shape
            (KH, KW), (SH, SW), (PH, PW), (H, W) = kernel, stride, padding, size
            dx = np.zeros((N, C, H + 2 * PH, W + 2 * PW))
            for n in range(N):
                for c in range(C):
                    for oh in range(OH):
                        for ow in range(OW):
                            i, j = divmod(int(argmax[c, oh, ow, n]), KW)
                            dx[n, c, oh * SH + i, ow * SW + j] += gy[n, c, oh, ow]
            return dx[:, :, PH:PH + H, PW:PW + W]
        """,
    "avg_pool2d.py": """
        import numpy as np


        def avg_pool2d_backward(gy, kernel, stride, padding, size):
            N, C, OH, OW = gy.shape
            (KH, KW), (SH, SW), (PH, PW), (H, W) = kernel, stride, padding, size
            dx = np.zeros((N, C, H + 2 * PH + KH, W + 2 * PW + KW))
            for i in range(KH):
                for j in range(KW):
                    dx[:, :, i:i + SH * OH:SH, j:j + SW * OW:SW] += gy / (KH * KW)
            return dx[:, :, PH:PH + H, PW:PW + W]
        """,
    "batch_norm.py": """
        import numpy as np


        def batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True):
            N, C, H, W = gy.shape
            M = N * H * W
            dbias = gy.sum(axis=(0, 2, 3))
            dweight = (gy * xhat).sum(axis=(0, 2, 3))
            w = np.ones(C) if weight is None else weight
            scale = (w * inv_std).reshape(1, C, 1, 1)
            if not batch_stats:
                return scale * gy, dweight, dbias
            dx = scale * (gy - dbias.reshape(1, C, 1, 1) / M
                          - xhat * dweight.reshape(1, C, 1, 1) / M)
            return dx, dweight, dbias
        """,
    "unet_skip.py": """
        def skip_split(grad, up_channels):
            return grad[:, :up_channels], grad[:, up_channels:]


        def skip_sum(grad_pool, grad_skip):
            return grad_pool + grad_skip
        """,
    "unet_backward.py": """
        from unet_skip import skip_split, skip_sum          # the learner's own, next to this file


        def unet_backward(grad_output, c_up2, c_up1, stage):
            g = stage("d1", stage("out", stage("sigmoid", grad_output)))
            g_up1, g_e1 = skip_split(g, c_up1)
            g = stage("d2", stage("u1", g_up1))
            g_up2, g_e2 = skip_split(g, c_up2)
            g_e2 = skip_sum(stage("pool2", stage("b", stage("u2", g_up2))), g_e2)
            g_e1 = skip_sum(stage("pool1", stage("e2", g_e2)), g_e1)
            return stage("e1", g_e1)
        """,
    "adam_step.py": """
        import numpy as np


        def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
            beta1, beta2 = betas
            g = grad + weight_decay * param
            m = beta1 * exp_avg + (1 - beta1) * g
            v = beta2 * exp_avg_sq + (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** step)
            v_hat = v / (1 - beta2 ** step)
            return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
        """,
}

# The functional exercises answered with the library's own functions, imported (flagged).
IMPORTED = {
    "conv2d_grad_weight.py": "from scratchnet.functional import conv2d_grad_weight\n",
    "conv2d_grad_input.py": "from scratchnet.functional import conv2d_grad_input\n",
    "col2im.py": "from scratchnet.functional import col2im\n",
    "max_pool2d.py": "from scratchnet.functional import max_pool2d_backward\n",
    "avg_pool2d.py": "from scratchnet.functional import avg_pool2d_backward\n",
}


@pytest.fixture
def solved(tmp_path: Path) -> Path:
    return write(tmp_path / "solved", SOLUTIONS)


def test_every_exercise_has_a_solution_and_a_stub():
    assert {f"{name}.py" for name in EXERCISES} == set(SOLUTIONS) == set(cli.stub_files())
    assert len(EXERCISES) >= 11


def test_the_capstone_uses_every_exercise_its_models_call():
    used = {m: [ex.name for ex in capstone.exercises_for(m)] for m in capstone.RECIPES}
    assert used["conv"] == ["relu", "mse", "conv2d_grad_weight", "conv2d_grad_input", "col2im",
                            "conv_transpose2d", "sigmoid", "adam_step"]
    assert set(used["unet"]) == set(used["conv"]) | {"batch_norm", "max_pool2d", "unet_skip",
                                                     "unet_backward"}
    assert used["dense"] == ["linear", "relu", "mse", "sigmoid", "adam_step"]
    assert set(EXERCISES) - {n for names in used.values() for n in names} == {"avg_pool2d",
                                                                               "cross_entropy"}


def test_written_out_solutions_pass_every_exercise(solved: Path):
    results = grade(solved)
    report = "\n".join(format_result(r) for r in results)
    assert all(r.passed for r in results), report
    assert "FAIL" not in report
    assert len(re.findall(r"^  gradcheck +pass", report, re.M)) == len(EXERCISES) - 1


def test_the_library_functions_imported_are_flagged_not_passed(tmp_path: Path):
    folder = write(tmp_path / "imported", {**IMPORTED, "relu.py": """
        import types
        from scratchnet import ops
        # a new function made of the library's code object
        relu_backward = types.FunctionType(ops.reference("relu_backward").__code__, {})
        """, "sigmoid.py": "from scratchnet.nn.activation import *\n"
                           "from scratchnet.functional import sigmoid_backward as sigmoid_backward\n"})
    for file in [*IMPORTED, "relu.py", "sigmoid.py"]:
        result = grade_exercise(EXERCISES[file[:-3]], folder)
        report = flat(format_result(result))
        assert result.status == "FAIL", report
        name = EXERCISES[file[:-3]].functions[0]
        assert f"{name} in {folder / file} is the library's own {name}" in report, report
        assert report.endswith("not yours: write your own"), report


def test_the_capstone_refuses_the_library_functions(solved: Path):
    write(solved, {"relu.py": "from scratchnet.functional import relu_backward\n"})
    proc = run_cli("train", solved)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not passing yet: relu (FAIL: relu_backward in" in proc.stderr
    assert "is the library's own relu_backward" in proc.stderr


def test_check_of_correct_solutions_exits_0_and_reports_every_tensor(solved: Path):
    proc = run_cli("check", solved, "linear", "batch_norm")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for tensor in ("dx", "dweight", "dbias", "gradcheck"):
        assert re.search(rf"^  {tensor} +pass +\d+ configurations", out, re.M), out
    assert "worst entry" in out and out.strip().endswith("s)")
    assert out.splitlines()[-1].startswith("2 of 2 exercises pass")


# --- planted mistakes: one diagnosis each ----------------------------------------------------
PLANTED = {
    # id: (exercise, wrong solution, what the report must say)
    "missing_1_over_M": ("mse", """
        def mse_backward(diff, grad_output):
            return 2 * diff * grad_output
        """, "a factor 1/M is missing"),
    "missing_factor_2": ("mse", """
        def mse_backward(diff, grad_output):
            return diff * grad_output / diff.size
        """, "exactly half the right answer: a factor 2 is missing"),
    "missing_grad_output": ("mse", """
        def mse_backward(diff, grad_output):
            return 2 * diff / diff.size
        """, "leaves out grad_output"),
    "accumulated_twice": ("linear", """
        def linear_backward(gy, x, weight):
            dbias = gy.sum(axis=0)
            dbias += gy.sum(axis=0)
            return gy @ weight, gy.T @ x, dbias
        """, "exactly twice the right answer: each contribution was added twice"),
    "sign_flip": ("sigmoid", """
        def sigmoid_backward(gy, y):
            return -gy * y * (1 - y)
        """, "the sign is flipped"),
    "all_zeros": ("conv2d_grad_weight", """
        import numpy as np
        def conv2d_grad_weight(gy, col):
            return np.zeros((gy.shape[1],) + col.shape[:3])
        """, "yours is all zeros: nothing was accumulated"),
    "swapped_axes": ("linear", """
        def linear_backward(gy, x, weight):
            return gy @ weight, x.T @ gy, gy.sum(axis=0)
        """, "after swapping axes out and in: two axes are exchanged"),
    "kernel_flipped": ("conv2d_grad_weight", """
        def conv2d_grad_weight(gy, col):
            C, KH, KW, OH, OW, N = col.shape
            g = gy.transpose(1, 2, 3, 0).reshape(gy.shape[1], -1)
            dw = (g @ col.reshape(C * KH * KW, -1).T).reshape(-1, C, KH, KW)
            return dw[:, :, ::-1, ::-1]
        """, "after rotating by 180 degrees (reversing KH and KW)"),
    "unflipped_kernel": ("conv2d_grad_input", """
        import numpy as np
        def conv2d_grad_input(gy, weight, size, stride, padding):
            # a full correlation of the spread-out gy, with the kernel NOT rotated
            OC, C, KH, KW = weight.shape
            N, _, OH, OW = gy.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            d = np.zeros((N, OC, (OH - 1) * SH + 1, (OW - 1) * SW + 1))
            d[:, :, ::SH, ::SW] = gy
            d = np.pad(d, ((0, 0), (0, 0), (KH - 1, KH + H), (KW - 1, KW + W)))
            out = np.zeros((N, C, H + 2 * PH, W + 2 * PW))
            for h in range(H + 2 * PH):
                for w in range(W + 2 * PW):
                    out[:, :, h, w] = np.einsum("nokl,ockl->nc", d[:, :, h:h + KH, w:w + KW],
                                                weight)
            return out[:, :, PH:PH + H, PW:PW + W]
        """, "computed with the kernel rotated by 180 degrees"),
    "border_pixels": ("col2im", """
        import numpy as np
        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            x = np.zeros((N, C, H, W))
            for i in range(KH):
                for j in range(KW):
                    for oh in range(OH):
                        for ow in range(OW):      # clamps padded entries onto the border
                            h = min(max(oh * SH + i - PH, 0), H - 1)
                            w = min(max(ow * SW + j - PW, 0), W - 1)
                            x[:, :, h, w] += col[:, i, j, oh, ow, :].T
            return x
        """, "wrong only on border pixels"),
    "padding_not_cropped": ("col2im", """
        import numpy as np
        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            xpad = np.zeros((N, C, H + 2 * PH + KH, W + 2 * PW + KW))
            block = col.transpose(5, 0, 1, 2, 3, 4)
            for i in range(KH):
                for j in range(KW):
                    xpad[:, :, i:i + SH * OH:SH, j:j + SW * OW:SW] += block[:, :, i, j]
            return xpad[:, :, :H + 2 * PH, :W + 2 * PW]
        """, "the padding was not removed at the end"),
    "shifted_by_the_padding": ("col2im", """
        import numpy as np
        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            xpad = np.zeros((N, C, H + 2 * PH + KH, W + 2 * PW + KW))
            block = col.transpose(5, 0, 1, 2, 3, 4)
            for i in range(KH):
                for j in range(KW):
                    xpad[:, :, i:i + SH * OH:SH, j:j + SW * OW:SW] += block[:, :, i, j]
            return xpad[:, :, :H, :W]
        """, "moved by 1 row(s) and 1 column(s)"),
    "assigned_not_added": ("col2im", """
        import numpy as np
        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            xpad = np.zeros((N, C, H + 2 * PH + KH, W + 2 * PW + KW))
            block = col.transpose(5, 0, 1, 2, 3, 4)
            for i in range(KH):
                for j in range(KW):
                    xpad[:, :, i:i + SH * OH:SH, j:j + SW * OW:SW] = block[:, :, i, j]
            return xpad[:, :, PH:PH + H, PW:PW + W]
        """, "overlapping windows must be added (+=), not assigned (=)"),
    "reshape_not_transpose": ("col2im", """
        import numpy as np
        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            xpad = np.zeros((C, H + 2 * PH + KH, W + 2 * PW + KW, N))
            for i in range(KH):
                for j in range(KW):
                    xpad[:, i:i + SH * OH:SH, j:j + SW * OW:SW] += col[:, i, j]
            return np.ascontiguousarray(xpad[:, PH:PH + H, PW:PW + W]).reshape(N, C, H, W)
        """, "exactly the right values, in the wrong places"),
    "stride_ignored": ("col2im", """
        import numpy as np
        def col2im(col, stride, padding, size):
            C, KH, KW, OH, OW, N = col.shape
            (SH, SW), (PH, PW), (H, W) = stride, padding, size
            xpad = np.zeros((N, C, H + 2 * PH + KH + OH, W + 2 * PW + KW + OW))
            block = col.transpose(5, 0, 1, 2, 3, 4)
            for i in range(KH):
                for j in range(KW):
                    xpad[:, :, i:i + OH, j:j + OW] += block[:, :, i, j]
            return xpad[:, :, PH:PH + H, PW:PW + W]
        """, "fails exactly in the configurations with stride > 1"),
    "last_sample_only": ("linear", """
        import numpy as np
        def linear_backward(gy, x, weight):
            for n in range(len(x)):
                dweight = np.outer(gy[n], x[n])
            return gy @ weight, dweight, gy.sum(axis=0)
        """, "the contribution of the last sample only"),
    "sum_over_batch_missing": ("linear", """
        def linear_backward(gy, x, weight):
            return gy @ weight, gy.T @ x, gy
        """, "it matches after summing over its axis 0"),
    "per_channel_factor": ("batch_norm", """
        def batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True):
            N, C, H, W = gy.shape
            M = N * H * W
            db, dw = gy.sum(axis=(0, 2, 3)), (gy * xhat).sum(axis=(0, 2, 3))
            s = inv_std.reshape(1, C, 1, 1)            # the factor weight is forgotten
            if not batch_stats:
                return s * gy, dw, db
            return s * (gy - db.reshape(1, C, 1, 1) / M - xhat * dw.reshape(1, C, 1, 1) / M), dw, db
        """, "the right answer divided by weight (per C): the factor weight is missing"),
    "fixed_statistics": ("batch_norm", """
        import numpy as np
        def batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True):
            N, C, H, W = gy.shape
            w = np.ones(C) if weight is None else weight
            return ((w * inv_std).reshape(1, C, 1, 1) * gy, (gy * xhat).sum(axis=(0, 2, 3)),
                    gy.sum(axis=(0, 2, 3)))
        """, "treats the mean and variance as constants"),
    "argmax_decoding": ("max_pool2d", """
        import numpy as np
        def max_pool2d_backward(gy, argmax, kernel, stride, padding, size):
            N, C, OH, OW = gy.shape
            (KH, KW), (SH, SW), (PH, PW), (H, W) = kernel, stride, padding, size
            dx = np.zeros((N, C, H + 2 * PH, W + 2 * PW))
            for n in range(N):
                for c in range(C):
                    for oh in range(OH):
                        for ow in range(OW):
                            k = int(argmax[c, oh, ow, n])
                            i, j = k % KH, k // KH
                            dx[n, c, oh * SH + i, ow * SW + j] += gy[n, c, oh, ow]
            return dx[:, :, PH:PH + H, PW:PW + W]
        """, "decodes argmax column by column"),
    "sigmoid_applied_again": ("sigmoid", """
        import numpy as np
        def sigmoid_backward(gy, y):
            s = 1 / (1 + np.exp(-y))
            return gy * s * (1 - s)
        """, "applies the sigmoid to y again"),
    "not_a_number": ("relu", """
        import numpy as np
        def relu_backward(gy, x):
            mask = (x > 0).astype(float)
            return gy * mask / mask                    # 0/0 where x <= 0
        """, "entries are NaN or infinite"),
    "relu_mask_alone": ("relu", """
        def relu_backward(gy, x):
            return (x > 0) * 1.0
        """, "the mask [x > 0] itself: multiply gy by it"),
    "skip_split_swapped": ("unet_skip", """
        def skip_split(grad, up_channels):
            skip = grad.shape[1] - up_channels
            return grad[:, skip:], grad[:, :skip]
        def skip_sum(grad_pool, grad_skip):
            return grad_pool + grad_skip
        """, "yours is the skip's part"),
    "skip_sum_missing": ("unet_skip", """
        def skip_split(grad, up_channels):
            return grad[:, :up_channels], grad[:, up_channels:]
        def skip_sum(grad_pool, grad_skip):
            return grad_pool
        """, "yours is grad_pool alone"),
    "adam_no_bias_correction": ("adam_step", """
        import numpy as np
        def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
            b1, b2 = betas
            g = grad + weight_decay * param
            m = b1 * exp_avg + (1 - b1) * g
            v = b2 * exp_avg_sq + (1 - b2) * g * g
            return param - lr * m / (np.sqrt(v) + eps), m, v
        """, "no bias correction"),
    "adam_step_counted_twice": ("adam_step", """
        import numpy as np
        def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
            b1, b2 = betas
            step += 1
            g = grad + weight_decay * param
            m = b1 * exp_avg + (1 - b1) * g
            v = b2 * exp_avg_sq + (1 - b2) * g * g
            return param - lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps), m, v
        """, "uses step t + 1"),
    "adam_missing_lr": ("adam_step", """
        import numpy as np
        def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
            b1, b2 = betas
            g = grad + weight_decay * param
            m = b1 * exp_avg + (1 - b1) * g
            v = b2 * exp_avg_sq + (1 - b2) * g * g
            return param - (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps), m, v
        """, "a factor lr is missing"),
    "adam_decoupled_decay": ("adam_step", """
        import numpy as np
        def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr, betas, eps, weight_decay):
            b1, b2 = betas
            param = param * (1 - lr * weight_decay)
            m = b1 * exp_avg + (1 - b1) * grad
            v = b2 * exp_avg_sq + (1 - b2) * grad * grad
            return param - lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + eps), m, v
        """, "decays the weights directly (AdamW)"),
    "transposed_conv_kernel_rotated": ("conv_transpose2d", """
        from scratchnet.functional import conv2d, conv2d_grad_weight
        def conv_transpose2d_backward(gy, x, weight, stride, padding):
            dx, gcol = conv2d(gy, weight[:, :, ::-1, ::-1].copy(), None, stride, padding)
            return dx, conv2d_grad_weight(x, gcol), gy.sum(axis=(0, 2, 3))
        """, "computed with the kernel rotated by 180 degrees"),
    "layout_wrong_only_with_a_batch": ("conv2d_grad_weight", """
        def conv2d_grad_weight(gy, col):
            C, KH, KW, OH, OW, N = col.shape
            g = gy.reshape(gy.shape[1], -1)            # batch first: col keeps it last
            return (g @ col.reshape(C * KH * KW, -1).T).reshape(-1, C, KH, KW)
        """, "fails exactly in the configurations with batch > 1"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_mistake_gets_its_diagnosis(case: str, tmp_path: Path):
    exercise, source, expected = PLANTED[case]
    folder = write(tmp_path / case, {f"{exercise}.py": source, "col2im.py": SOLUTIONS["col2im.py"]}
                   if exercise != "col2im" else {"col2im.py": source})
    result = grade_exercise(EXERCISES[exercise], folder)
    report = format_result(result)
    assert result.status == "FAIL", report
    assert expected in flat(report), report
    assert "Traceback" not in report


def test_missing_1_over_n_on_the_command_line(tmp_path: Path):
    folder = write(tmp_path / "ex", {"mse.py": PLANTED["missing_1_over_M"][1]})
    proc = run_cli("check", folder, "mse")
    assert proc.returncode == 1
    assert re.search(r"dpred +FAIL +in 3 of 3 configurations", proc.stdout), proc.stdout
    assert re.search(r"worst entry \(\d+(, \d+)*\): yours [-\d.e]+, expected [-\d.e]+",
                     proc.stdout)
    assert "diagnosis: yours is 96 times the right answer everywhere, and 96 = M" in proc.stdout
    assert "a factor 1/M is missing" in flat(proc.stdout)
    assert re.search(r"^  gradcheck +FAIL", proc.stdout, re.M)
    assert proc.stdout.splitlines()[-1].startswith("0 of 1 exercise pass, 1 fails")


def test_diagnose_on_plain_arrays():
    right = np.arange(1.0, 7.0).reshape(2, 3)
    assert diagnose(right, right) == []
    six = Context(sizes=(("N", 6, "six"),))
    assert "a factor 1/N is missing" in diagnose(6 * right, right, six)[0]
    assert "sign is flipped" in diagnose(-right, right)[0]
    assert "all zeros" in diagnose(0 * right, right)[0]
    c = compare("dx", right.T, right, Context(axes=("N", "F")))
    assert not c.passed and "swapping axes N and F" in c.diagnoses[0]
    assert compare("dx", right + 1e-14, right).passed


def test_an_input_changed_in_place_fails_with_its_name(tmp_path: Path):
    folder = write(tmp_path / "ex", {"relu.py": """
        def relu_backward(gy, x):
            gy[x <= 0] = 0
            return gy
        """})
    report = format_result(grade_exercise(EXERCISES["relu"], folder))
    assert "relu_backward changed its argument(s) gy in place" in flat(report)
    assert re.search(r"dx +pass", report)


def test_a_missing_return_is_named(tmp_path: Path):
    folder = write(tmp_path / "ex", {"linear.py": """
        def linear_backward(gy, x, weight):
            dx = gy @ weight
        """})
    report = format_result(grade_exercise(EXERCISES["linear"], folder))
    assert "linear_backward returned None (a missing `return`?)" in flat(report)


def test_an_edited_file_is_read_afresh(tmp_path: Path):
    folder = write(tmp_path / "ex", {"conv2d_grad_input.py": SOLUTIONS["conv2d_grad_input.py"],
                                     "col2im.py": PLANTED["assigned_not_added"][1]})
    assert not grade_exercise(EXERCISES["conv2d_grad_input"], folder).passed
    write(folder, {"col2im.py": SOLUTIONS["col2im.py"]})     # the helper module, fixed
    assert grade_exercise(EXERCISES["conv2d_grad_input"], folder).passed


# --- stubs and `new` ---------------------------------------------------------------------------
def test_stubs_ship_as_package_data_and_match_the_exercises():
    """The signature, written once in the table, is the stub's and the library op's."""
    stubs = cli.stub_files()
    folder = Path(cli.__file__).parent / "stubs"           # a stub may import another one
    for name, ex in EXERCISES.items():
        namespace: dict = {}
        with learner_code(folder):
            exec(compile(stubs[ex.file], ex.file, "exec"), namespace)
        for sig in ex.signatures:
            fn = namespace[sig.name]
            assert sig.matches(fn), (sig.text, inspect.signature(fn))
            assert sig.matches(ops.OPS[sig.name], extra_options=True), (sig.text, inspect.signature(ops.OPS[sig.name]))
            doc = inspect.getdoc(fn)
            assert "Args:" in doc and "Returns:" in doc and "Math" in doc, ex.file
            with pytest.raises(NotImplementedError) as info:
                fn(*[None] * len(inspect.signature(fn).parameters))
            assert str(info.value) and "\n" not in str(info.value)


def test_the_stubs_state_the_task_and_leave_the_formula_to_hint_3():
    """No step of an exercise's formula (its third hint, split at ';') is in its stub."""
    stubs = cli.stub_files()
    for ex in EXERCISES.values():
        steps = [step.strip() for step in ex.hints[2].split(";") if len(step.strip()) > 12]
        text = " ".join(stubs[ex.file].split())
        assert steps and not [step for step in steps if step in text], (ex.name, steps)


def test_new_writes_every_stub_and_refuses_a_folder_that_is_not_empty(tmp_path: Path):
    folder = tmp_path / "a" / "b"
    proc = run_cli("new", folder)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_text() for p in folder.iterdir()} == cli.stub_files()
    (folder / "linear.py").write_text("# my work\n")
    before = {p.name: p.read_text() for p in folder.iterdir()}
    proc = run_cli("new", folder)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and str(folder) in proc.stderr
    assert "not empty" in proc.stderr
    assert {p.name: p.read_text() for p in folder.iterdir()} == before      # nothing touched
    (tmp_path / "file").write_text("x")
    proc = run_cli("new", tmp_path / "file")
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("new", empty).returncode == 0


def test_new_never_overwrites_a_file_that_appears_meanwhile(tmp_path: Path, monkeypatch, capsys):
    folder = tmp_path / "ex"
    stubs = cli.stub_files()

    def racing() -> dict[str, str]:              # another writer gets there first
        folder.mkdir()
        (folder / "mse.py").write_text("# mine\n")
        return stubs

    monkeypatch.setattr(cli, "stub_files", racing)
    assert cli.main(["new", str(folder)]) == 1
    assert (folder / "mse.py").read_text() == "# mine\n"
    assert "nothing was overwritten" in capsys.readouterr().err


def test_untouched_stubs_are_not_written_yet_and_exit_1(tmp_path: Path):
    folder = tmp_path / "ex"
    assert run_cli("new", folder).returncode == 0
    proc = run_cli("check", folder)
    assert proc.returncode == 1
    assert proc.stdout.count(": not written yet") == len(EXERCISES)
    assert "linear_backward still raises NotImplementedError; the stub's hint:" in flat(proc.stdout)
    assert proc.stdout.splitlines()[-1].startswith(f"0 of {len(EXERCISES)} exercises pass, "
                                                   f"{len(EXERCISES)} not written yet")
    proc = run_cli("check", folder, "relu")
    assert proc.returncode == 1 and "relu: not written yet" in proc.stdout
    assert {p.name for p in folder.iterdir()} == set(cli.stub_files())    # no __pycache__


def test_a_learner_exception_points_at_the_learners_file_and_line(tmp_path: Path):
    folder = write(tmp_path / "ex", {"linear.py": """
        import numpy as np


        def helper(a, b):
            return a @ b


        def linear_backward(gy, x, weight):
            dx = helper(gy, weight.T)
            return dx, gy.T @ x, gy.sum(axis=0)
        """})
    proc = run_cli("check", folder, "linear")
    assert proc.returncode == 1
    out = proc.stdout
    assert "your code raised ValueError: matmul" in out
    assert re.search(rf"at {re.escape(str(folder / 'linear.py'))}, line 5, in helper:  "
                     r"return a @ b", out), out
    assert "scratchnet/learn" not in out and "Traceback" not in out + proc.stderr
    write(folder, {"linear.py": "def linear_backward(gy, x, weight)\n    return gy\n"})
    proc = run_cli("check", folder, "linear")
    assert proc.returncode == 1
    where = re.escape(str(folder / "linear.py"))
    assert re.search(rf"SyntaxError.*\n.*{where}, line 1", proc.stdout), proc.stdout


@pytest.mark.parametrize("args, words", [
    (["check", "{tmp}/nowhere"], "folder {tmp}/nowhere does not exist"),
    (["check", "{tmp}", "linear", "lineaar"], "unknown exercise 'lineaar'"),
    (["check", "{tmp}/file"], "{tmp}/file is not a folder"),
    (["check", "{tmp}", "--timeout", "0"], "expected a finite number > 0, got '0'"),
    (["check"], "the following arguments are required: DIR"),
    (["train", "{tmp}/nowhere"], "folder {tmp}/nowhere does not exist"),
    (["train", "{tmp}", "--every", "0"], "expected a positive integer"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_usage_exits_2_in_one_line(args: list[str], words: str, tmp_path: Path):
    (tmp_path / "file").write_text("x")
    proc = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
    assert words.format(tmp=tmp_path) in proc.stderr


def test_list_names_every_exercise_with_its_chapter_and_library_code():
    proc = run_cli("list")
    assert proc.returncode == 0
    for ex in EXERCISES.values():
        line = next(l for l in proc.stdout.splitlines() if l.startswith(ex.name + " "))
        assert ex.signature in line and ex.chapter in line and ex.library in line
        assert Path(ex.library.split(":")[0]).is_file()
    assert "docs/learn/09-training.md" in proc.stdout and "02-gradcheck.md" in proc.stdout


# --- the learner's functions inside the library's layers ------------------------------------
def test_the_learners_functions_run_inside_the_library_layers(solved: Path):
    """Each gradient check runs the library's own layer (nn.Conv2d, nn.BatchNorm2d, UNet ...)
    with the learner's function in place of the op, and the learner's function is called."""
    calls: dict[str, int] = {}

    def counting(name, fn):
        def call(*args):
            calls[name] = calls.get(name, 0) + 1
            return fn(*args)
        return call

    with learner_code(solved):
        for ex in EXERCISES.values():
            fns = {n: counting(n, fn) for n, fn in load_functions(solved, ex).items()}
            if ex.layer is None:
                continue
            case = next(ex.cases())
            with learner_overrides([ex], fns):
                module, inputs = ex.gradcheck_module(case)
                assert type(module).__module__ in ("scratchnet.nn.conv", "scratchnet.nn.linear",
                                                   "scratchnet.nn.activation", "scratchnet.nn.loss",
                                                   "scratchnet.nn.pooling", "scratchnet.models",
                                                   "scratchnet.nn.normalization"), module
                assert sn.gradcheck(module, *inputs, **ex.gradcheck).passed, ex.name
    assert set(calls) == {f for ex in EXERCISES.values() if ex.layer for f in ex.functions}


def test_the_learn_package_defines_no_layers():
    for name in ("capstone", "cli", "diagnose", "exercises", "grader"):
        module = importlib.import_module(f"scratchnet.learn.{name}")
        own = [obj for obj in vars(module).values() if inspect.isclass(obj)
               and issubclass(obj, (nn.Module, sn.optim.Optimizer))
               and obj.__module__.startswith("scratchnet.learn")]
        assert not own, own


# --- the capstone -------------------------------------------------------------------------------
def test_the_capstone_refuses_while_exercises_fail(tmp_path: Path):
    folder = write(tmp_path / "ex", {k: v for k, v in SOLUTIONS.items() if k != "sigmoid.py"})
    write(folder, {"mse.py": PLANTED["missing_1_over_M"][1]})
    proc = run_cli("train", folder)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "the conv model uses must pass first; not passing yet: mse (FAIL), sigmoid (FAIL)" \
        in proc.stderr
    assert f"check {folder} mse sigmoid" in proc.stderr


def test_the_capstone_without_data_says_how_to_point_at_it(solved: Path, tmp_path: Path):
    env = {"SCRATCHNET_DATA": str(tmp_path / "no-data"), "SCRATCHNET_CACHE": str(tmp_path / "c")}
    if Path("/usr/share/datasets/mnist").is_dir():
        pytest.skip("MNIST is installed system-wide here, so it cannot be missing")
    proc = run_cli("train", solved, env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "MNIST (train) not found" in proc.stderr and "SCRATCHNET_DATA" in proc.stderr
    assert "--download" in proc.stderr


@pytest.mark.realdata
def test_the_capstone_with_correct_solutions_agrees_with_the_library(real_data, solved: Path):
    proc = run_cli("train", solved, "--limit-train", "2000", "--epochs", "1", "--every", "8",
                   "--limit-test", "500", env={"SCRATCHNET_DATA": str(real_data)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert ("training the conv model with your relu, mse, conv2d_grad_weight, conv2d_grad_input, "
            "col2im, conv_transpose2d, sigmoid, adam_step") in out
    assert "2,000 MNIST training images, 1 epoch of 32 batches of 64" in out
    rows = [l.split() for l in out.splitlines() if re.match(r" +\d+ ", l)]
    assert [int(r[0]) for r in rows] == [1, 8, 16]
    for _, lib, yours, _ in rows:
        assert abs(float(lib) - float(yours)) <= 1e-4 * float(lib)
    assert "the curves agree to float32 rounding" in out
    assert re.search(r"^epoch 1: train MSE 0\.\d+, test MSE 0\.\d+", out, re.M)
    for name in ("your conv model", "the noisy input itself", "all black (zeros)",
                 "the average training image"):
        assert re.search(rf"^  {re.escape(name)} +0\.\d{{4}}  \(\d+\.\d dB\)$", out, re.M), out
    assert (solved / "capstone-conv.png").stat().st_size > 10_000
    assert f"wrote {solved / 'capstone-conv.png'}" in out


@pytest.mark.realdata
def test_the_capstone_trains_the_unet_with_batch_norm_pooling_and_the_skip_rules(
        real_data, solved: Path, tmp_path: Path):
    figure = tmp_path / "unet.png"
    lines: list[str] = []
    status = capstone.train(solved, model="unet", limit_train=640, epochs=1, limit_test=200,
                            data_dir=str(real_data), figure=figure, out=lines.append,
                            err=lines.append)
    text = "\n".join(lines)
    assert status == 0, text
    assert "batch_norm, unet_skip, unet_backward, adam_step" in text and "max_pool2d" in text
    assert "the curves agree to float32 rounding" in text
    assert figure.stat().st_size > 10_000


FLOAT32_SLIPS = {
    # exercise: (a float32-only mistake that float64 grading cannot see, model, the words)
    "sigmoid": ("""
        import numpy as np


        def sigmoid_backward(gy, y):
            if y.dtype == np.float32:
                return gy * y
            return gy * y * (1 - y)
        """, "conv", "first differ at decoder.5 (Sigmoid, dx"),
    "batch_norm": (SOLUTIONS["batch_norm.py"].replace(
        "return dx, dweight, dbias", "return dx, dweight * (2 if gy.dtype == np.float32 else 1), dbias"),
        "unet", "(BatchNorm2d, dweight"),
    "unet_skip": ("""
        import numpy as np


        def skip_split(grad, up_channels):
            return grad[:, :up_channels], grad[:, up_channels:]


        def skip_sum(grad_pool, grad_skip):
            return grad_pool if grad_pool.dtype == np.float32 else grad_pool + grad_skip
        """, "unet", "but the gradient arriving at it differs"),
}


@pytest.mark.realdata
@pytest.mark.parametrize("exercise", sorted(FLOAT32_SLIPS))
def test_the_capstone_names_the_exercise_when_the_curves_diverge(real_data, solved: Path,
                                                                exercise: str):
    source, model, words = FLOAT32_SLIPS[exercise]
    write(solved, {f"{exercise}.py": source})
    lines: list[str] = []
    assert capstone.train(solved, model=model, limit_train=256, data_dir=str(real_data),
                          out=lines.append, err=lines.append) == 1
    text = "\n".join(lines)
    assert "the curves diverge" in text and words in text, text
    assert f"look at {exercise} (python -m scratchnet.learn check {solved} {exercise})" in text
    assert not (solved / f"capstone-{model}.png").exists()
