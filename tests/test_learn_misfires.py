"""The grader's verdicts on the mistakes it used to point only near (or past): each planted
here as a learner wrote it, and the verdict must name it (and must not say what misled)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from scratchnet.learn import EXERCISES, format_result, grade_exercise
from test_learn import SOLUTIONS, flat, write

MISFIRES = {
    # id: (exercise, wrong solution, the words the verdict must hold, words it must not)
    "conv_weight_averaged_by_n": ("conv2d_grad_weight", """
        def conv2d_grad_weight(gy, col):
            C, KH, KW, OH, OW, N = col.shape
            g = gy.transpose(1, 2, 3, 0).reshape(gy.shape[1], -1)
            return (g @ col.reshape(C * KH * KW, -1).T).reshape(-1, C, KH, KW) / N
        """, "1/2 = 1/N (the batch size): a factor N is missing", "square"),
    "relu_halved": ("relu", """
        def relu_backward(gy, x):
            return 0.5 * gy * (x > 0)
        """, "exactly half the right answer: a factor 2 is missing (or there is a division by 2",
        "square"),
    "skip_sum_averaged": ("unet_skip", """
        def skip_split(grad, up_channels):
            return grad[:, :up_channels], grad[:, up_channels:]
        def skip_sum(grad_pool, grad_skip):
            return (grad_pool + grad_skip) / 2
        """, "yours averages the two gradients", "square"),
    "transposed_bias_averaged_over_batch_and_pixels": ("conv_transpose2d", SOLUTIONS[
        "conv_transpose2d.py"].replace("gy.sum(axis=(0, 2, 3))", "gy.mean(axis=(0, 2, 3))"),
        "= 1/(N*OH*OW) (the batch size, times the number of output pixels): a factor N*OH*OW "
        "is missing", "no pattern"),
    "weight_reshaped_not_transposed": ("conv2d_grad_input", SOLUTIONS[
        "conv2d_grad_input.py"].replace("weight.reshape(OC, -1).T", "weight.reshape(-1, OC)"),
        "yours multiplies by weight.reshape(-1, OC): it has the shape of the transpose but not "
        "its entries", "no pattern"),
    "col_reshaped_not_transposed": ("conv2d_grad_weight", SOLUTIONS[
        "conv2d_grad_weight.py"].replace("col.reshape(C * KH * KW, -1).T", "col.reshape(-1, C * KH * KW)"),
        "yours multiplies by col.reshape(-1, C*KH*KW)", "no pattern"),
    "adam_without_the_square_root": ("adam_step", SOLUTIONS["adam_step.py"].replace(
        "np.sqrt(v_hat)", "v_hat"), "the square root is missing", "per-N"),
    "max_pool_fancy_index_add": ("max_pool2d", """
        import numpy as np
        def max_pool2d_backward(gy, argmax, kernel, stride, padding, size):
            N, C, OH, OW = gy.shape
            (KH, KW), (SH, SW), (PH, PW), (H, W) = kernel, stride, padding, size
            dx = np.zeros((N, C, H + 2 * PH, W + 2 * PW))
            c, oh, ow, n = np.indices(argmax.shape)
            i, j = argmax // KW, argmax % KW
            dx[n, c, oh * SH + i, ow * SW + j] += gy[n, c, oh, ow]    # drops repeated indices
            return dx[:, :, PH:PH + H, PW:PW + W]
        """, "np.add.at(dx, index, g)", "no pattern"),
    "batch_norm_staged_with_assignment": ("batch_norm", """
        import numpy as np
        def batch_norm_backward(gy, xhat, inv_std, weight, batch_stats=True):
            N, C, H, W = gy.shape
            M = N * H * W
            dbias, dweight = gy.sum(axis=(0, 2, 3)), (gy * xhat).sum(axis=(0, 2, 3))
            w = np.ones(C) if weight is None else weight
            scale = (w * inv_std).reshape(1, C, 1, 1)
            dx = scale * gy                                               # the direct path
            if batch_stats:
                dx = -scale * xhat * dweight.reshape(1, C, 1, 1) / M     # through the variance
                dx += -scale * dbias.reshape(1, C, 1, 1) / M             # through the mean
            return dx, dweight, dbias
        """, "yours lacks the direct term gy * weight * inv_std (the path around the statistics): "
             "in a staged backward, a later stage assigned dx (=) where it must add to it (+=)",
        "no pattern"),
    "cross_entropy_without_the_max": ("cross_entropy", SOLUTIONS["cross_entropy.py"].replace(
        "m = input.max(axis=1, keepdims=True)", "m = 0"),
        "fails exactly in the configurations with large logits (and passes the others): exp of a "
        "large score overflows: subtract each row's maximum before exp", "per-N"),
    "cross_entropy_without_1_over_n": ("cross_entropy", SOLUTIONS["cross_entropy.py"].replace(
        "d * grad_output / len(target)", "d * grad_output"),
        "yours lacks the 1/N of the mean over the N = 4 samples", "square"),
    "cross_entropy_probs_not_minus_onehot": ("cross_entropy", SOLUTIONS["cross_entropy.py"].replace(
        "d[np.arange(len(target)), target] -= 1", "pass"),
        "yours is probs alone: the gradient of -log p[n, t_n] is p - onehot(t_n)", "no pattern"),
    "unet_skip_gradient_dropped": ("unet_backward", SOLUTIONS["unet_backward.py"].replace(
        'skip_sum(stage("pool2", stage("b", stage("u2", g_up2))), g_e2)',
        'stage("pool2", stage("b", stage("u2", g_up2)))'), "yours drops e2's skip gradient (its "
        "part of cat(up2, e2)): e2 fed two consumers, so its gradient is the sum of both",
        "no pattern"),
    "unet_fan_out_overwritten": ("unet_backward", SOLUTIONS["unet_backward.py"].replace(
        "g_e1 = skip_sum(stage(", "g_deep = (stage("),
        "yours gives e1 its skip gradient alone: the gradient from the path below (pool1, e2) was "
        "overwritten (=) where the two must be added (+=)", "no pattern"),
    "unet_stage_run_twice": ("unet_backward", SOLUTIONS["unet_backward.py"].replace(
        'g_e1 = skip_sum(stage("pool1", stage("e2", g_e2)), g_e1)',
        'g_e1 = skip_sum(stage("pool1", stage("e2", g_e2)), g_e1) + stage("e2", g_e2)'),
        "your code raised RuntimeError: ReLU.backward() called without a preceding forward(); each "
        "backward consumes the values its forward saved", "RuntimeError: RuntimeError"),
}


@pytest.mark.parametrize("case", sorted(MISFIRES))
def test_a_misfire_now_names_the_mistake(case: str, tmp_path: Path):
    exercise, source, words, not_words = MISFIRES[case]
    folder = write(tmp_path / case, {**SOLUTIONS, f"{exercise}.py": source})   # with what it imports
    result = grade_exercise(EXERCISES[exercise], folder)
    report = flat(format_result(result))
    assert result.status == "FAIL", report
    assert words in report, report
    assert not_words not in report, report


def test_the_mse_half_still_names_the_square(tmp_path: Path):
    folder = write(tmp_path / "ex", {"mse.py": """
        def mse_backward(diff, grad_output):
            return diff * grad_output / diff.size
        """})
    report = flat(format_result(grade_exercise(EXERCISES["mse"], folder)))
    assert "exactly half the right answer: a factor 2 is missing (the derivative of a square " \
           "brings one)" in report, report


RAISES_FOR_ONE_SAMPLE = """
    def linear_backward(gy, x, weight):
        if len(x) == 1:
            raise ValueError("one sample")
        return gy @ weight, gy.T @ x, gy.sum(axis=0){}
    """


def test_one_configuration_raising_leaves_the_others_graded(tmp_path: Path):
    folder = write(tmp_path / "ex", {"linear.py": RAISES_FOR_ONE_SAMPLE.format(" / len(x)")})
    result = grade_exercise(EXERCISES["linear"], folder)
    text = format_result(result)
    report = flat(text)
    assert result.status == "FAIL", text
    assert "your code raised ValueError: one sample" in report, text
    assert "in configuration: x (1, 3), weight (2, 3) (the others are graded below)" in report
    assert re.search(r"^  dx +pass +3 configurations", text, re.M), text
    assert re.search(r"^  dbias +FAIL +in 3 of 3 configurations", text, re.M), text
    assert "= 1/N (the batch size): a factor N is missing" in report, text
    assert "pattern fails exactly in the configurations with batch > 1" not in report


def test_a_passing_gradcheck_says_how_many_configurations_it_skipped(tmp_path: Path):
    folder = write(tmp_path / "ex", {"linear.py": RAISES_FOR_ONE_SAMPLE.format("")})
    text = format_result(grade_exercise(EXERCISES["linear"], folder))
    assert re.search(r"^  gradcheck +pass +3 configurations \(finite differences", text, re.M), text
    assert "worst relative error" in text and "; not run in 1 more: your code raised" in flat(text)
    assert "pattern fails exactly in the configurations with batch 1" not in flat(text)


ON_OWN_GRAD_WEIGHT = """
    from scratchnet.functional import conv2d, im2col
    from conv2d_grad_weight import conv2d_grad_weight


    def conv_transpose2d_backward(gy, x, weight, stride, padding):
        dx = conv2d(gy, weight, None, stride, padding)[0]
        dweight = conv2d_grad_weight(x, im2col(gy, weight.shape[2:], stride, padding))
        return dx, dweight, gy.sum(axis=(0, 2, 3))
    """


def test_an_exercise_built_on_the_learners_own_function_names_it_when_that_fails(tmp_path: Path):
    folder = write(tmp_path / "ex", {"conv_transpose2d.py": ON_OWN_GRAD_WEIGHT,
                                     "conv2d_grad_weight.py": SOLUTIONS["conv2d_grad_weight.py"]})
    result = grade_exercise(EXERCISES["conv_transpose2d"], folder)
    assert result.passed, format_result(result)
    write(folder, {"conv2d_grad_weight.py": MISFIRES["col_reshaped_not_transposed"][1]})
    result = grade_exercise(EXERCISES["conv_transpose2d"], folder)
    report = flat(format_result(result))
    assert result.status == "FAIL" and len(result.lines) == 1, report
    assert "conv_transpose2d uses your conv2d_grad_weight, which fails: dweight FAIL in 6 of 6 " \
           "configurations" in report and report.endswith("; check conv2d_grad_weight first"), report
