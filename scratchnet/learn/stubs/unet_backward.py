import numpy as np

from unet_skip import skip_split, skip_sum   # your own, next to this file (use them if you like)


def unet_backward(grad_output, c_up2, c_up1, stage):
    """The whole backward pass of the U-Net (scratchnet.models.UNet), from dL/dy to dL/dx.

        x ─ e1 ─────────────────────────────── cat ─ d1 ─ out ─ sigmoid ─ y
             └ pool1 ─ e2 ──────────── cat ─ d2 ─ u1 ┘
                        └ pool2 ─ b ─ u2 ┘
        forward: e1 = e1(x); e2 = e2(pool1(e1)); up2 = u2(b(pool2(e2)));
                 up1 = u1(d2(cat(up2, e2))); y = sigmoid(out(d1(cat(up1, e1))))

    Args:
        grad_output: (N, 1, H, W), dL/dy.
        c_up2: the channels of up2, the first part of cat(up2, e2).
        c_up1: the channels of up1, the first part of cat(up1, e1).
        stage: stage(name, g) runs the backward pass of the stage name ("sigmoid", "out",
            "d1", "u1", "d2", "u2", "b", "pool2", "e2", "pool1" or "e1") on g, the gradient
            of that stage's output, and returns the gradient of its input (it adds the
            stage's parameter gradients itself). Each stage's backward may run once.

    Returns:
        dx, (N, 1, H, W).

    Math: call every stage once, in an order in which each stage receives the complete
    gradient of its output; at each cat the gradient goes back to its two parts, and a map
    that fed two consumers (e1, e2) receives what both send back.
    """
    raise NotImplementedError("walk the forward pass backwards with stage(name, g); mind the "
                              "two concatenations and the two maps that fed two consumers")
