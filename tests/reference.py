"""Naive loop implementations, kept as references for the vectorised library code."""
from __future__ import annotations

import numpy as np


def conv2d_naive(x, w, b, stride, padding):
    """Direct definition: y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x_pad[n,c,i*SH+p,j*SW+q]."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    (SH, SW), (PH, PW) = stride, padding
    xp_ = np.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    xp_[:, :, PH:PH + H, PW:PW + W] = x
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    y = np.zeros((N, OC, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(OC):
            for i in range(OH):
                for j in range(OW):
                    patch = xp_[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW]
                    y[n, o, i, j] = (patch * w[o]).sum() + (b[o] if b is not None else 0)
    return y


def conv_transpose2d_naive(x, w, b, stride, padding, output_padding):
    """Scatter definition: each input pixel adds w[c] * x[n,c,i,j] onto the output window."""
    N, C, H, W = x.shape
    _, OC, KH, KW = w.shape
    (SH, SW), (PH, PW), (OPH, OPW) = stride, padding, output_padding
    OH = (H - 1) * SH - 2 * PH + KH + OPH
    OW = (W - 1) * SW - 2 * PW + KW + OPW
    full = np.zeros((N, OC, OH + 2 * PH + KH, OW + 2 * PW + KW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    full[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW] += x[n, c, i, j] * w[c]
    y = full[:, :, PH:PH + OH, PW:PW + OW].copy()
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def im2col_naive(x, kernel, stride, padding):
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    xp_ = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    col = np.zeros((N, C, KH, KW, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            for oh in range(OH):
                for ow in range(OW):
                    col[:, :, i, j, oh, ow] = xp_[:, :, oh * SH + i, ow * SW + j]
    return col


def adam_reference(theta, grads, lr, betas, eps, weight_decay, decoupled):
    """Adam/AdamW written out step by step in float64 with plain Python loops over steps."""
    theta = theta.astype(np.float64).copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    b1, b2 = betas
    out = []
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(theta.copy())
    return out


def sgd_reference(theta, grads, lr, momentum, dampening, weight_decay, nesterov):
    theta = theta.astype(np.float64).copy()
    buf = None
    out = []
    for g in grads:
        g = g.astype(np.float64) + weight_decay * theta
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        theta = theta - lr * g
        out.append(theta.copy())
    return out
