"""im2col/col2im and the conv kernels against naive loop references, on every backend."""
import itertools

import numpy as np
import pytest

from scratchnet import functional as F
from scratchnet.backend import to_numpy
from reference import conv2d_naive, conv_transpose2d_naive, im2col_naive

CASES = [  # kernel, stride, padding, input (N, C, H, W)
    ((3, 3), (1, 1), (0, 0), (2, 3, 6, 7)),
    ((3, 3), (2, 2), (1, 1), (2, 2, 7, 7)),
    ((2, 5), (3, 1), (2, 1), (1, 1, 8, 9)),
    ((1, 1), (2, 3), (0, 2), (3, 2, 5, 4)),
    ((5, 4), (2, 2), (2, 0), (2, 3, 9, 6)),
    ((7, 7), (1, 1), (0, 0), (2, 4, 7, 7)),
    ((4, 4), (3, 3), (0, 0), (1, 2, 11, 12)),   # (H - K) not a multiple of S: rows left over
]


@pytest.mark.parametrize("kernel,stride,padding,shape", CASES)
def test_im2col_matches_naive(xp, rng, kernel, stride, padding, shape):
    x = rng.standard_normal(shape)
    col = F.im2col(xp.asarray(x), kernel, stride, padding)          # batch axis last
    naive = im2col_naive(x, kernel, stride, padding)                   # (N, C, KH, KW, OH, OW)
    np.testing.assert_array_equal(to_numpy(col), naive.transpose(1, 2, 3, 4, 5, 0))


@pytest.mark.parametrize("kernel,stride,padding,shape", CASES)
def test_col2im_is_the_adjoint_of_im2col(xp, rng, kernel, stride, padding, shape):
    """<im2col(x), c> == <x, col2im(c)> for random x and c: col2im is exactly the transpose."""
    x = xp.asarray(rng.standard_normal(shape))
    col = F.im2col(x, kernel, stride, padding)
    c = xp.asarray(rng.standard_normal(col.shape))
    lhs = float((col * c).sum())
    rhs = float((x * F.col2im(c, stride, padding, shape[2:])).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,shape", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_matches_naive(xp, rng, kernel, stride, padding, shape, bias):
    w = rng.standard_normal((3, shape[1]) + kernel)
    b = rng.standard_normal(3) if bias else None
    x = rng.standard_normal(shape)
    y, _ = F.conv2d(xp.asarray(x), xp.asarray(w), None if b is None else xp.asarray(b),
                    stride, padding)
    np.testing.assert_allclose(to_numpy(y), conv2d_naive(x, w, b, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,stride,padding,shape", CASES)
def test_conv_transpose2d_matches_naive_for_every_output_padding(xp, rng, kernel, stride,
                                                                  padding, shape):
    w = rng.standard_normal((shape[1], 2) + kernel)
    b = rng.standard_normal(2)
    x = rng.standard_normal(shape)
    for op in itertools.product(range(stride[0]), range(stride[1])):
        out = [F.conv_transpose_output_size(n, k, s, p, o)
               for n, k, s, p, o in zip(shape[2:], kernel, stride, padding, op)]
        if min(out) < 1:
            continue
        y = F.conv_transpose2d(xp.asarray(x), xp.asarray(w), xp.asarray(b), stride, padding, op)
        np.testing.assert_allclose(to_numpy(y), conv_transpose2d_naive(x, w, b, stride, padding, op),
                                   rtol=1e-12, atol=1e-12)


def test_sigmoid_is_stable_for_huge_inputs(xp):
    x = xp.asarray([-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4], dtype=xp.float32)
    y = to_numpy(F.sigmoid(x))          # filterwarnings=error turns an overflow into a failure
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, [0, 0, 1.9287e-22, 0.5, 1, 1, 1], rtol=1e-4, atol=0)


@pytest.mark.parametrize("layout", ["contiguous", "batch_last", "fortran", "strided_slice"])
def test_conv_kernels_do_not_depend_on_memory_layout(xp, rng, layout):
    """The fast path reorders memory (batch axis last); results must not depend on it."""
    x = rng.standard_normal((3, 2, 9, 8))
    w = rng.standard_normal((4, 2, 3, 3))
    g = rng.standard_normal((3, 4, 5, 4))
    arrays = {"contiguous": lambda a: xp.asarray(a),
              "batch_last": lambda a: xp.ascontiguousarray(xp.asarray(a).transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2),
              "fortran": lambda a: xp.asfortranarray(xp.asarray(a)),
              "strided_slice": lambda a: xp.asarray(np.repeat(a, 2, axis=0))[::2]}[layout]
    y, col = F.conv2d(arrays(x), xp.asarray(w), None, (2, 2), (1, 1))
    np.testing.assert_allclose(to_numpy(y), conv2d_naive(x, w, None, (2, 2), (1, 1)), rtol=1e-12, atol=1e-12)
    gw = F.conv2d_grad_weight(arrays(g), col)
    gw_ref = F.conv2d_grad_weight(xp.asarray(g), F.im2col(xp.asarray(x), (3, 3), (2, 2), (1, 1)))
    np.testing.assert_allclose(to_numpy(gw), to_numpy(gw_ref), rtol=1e-12)
    yt = F.conv_transpose2d(arrays(g), xp.asarray(w), None, (2, 2), (1, 1), (0, 1))
    np.testing.assert_allclose(to_numpy(yt), conv_transpose2d_naive(g, w, None, (2, 2), (1, 1), (0, 1)),
                               rtol=1e-12, atol=1e-12)
