import numpy as np


def cross_entropy(input, target):
    """The loss of a classifier: the mean over the samples of -log(softmax(input[n])[target[n]]).

    Args:
        input: (N, C), the logits: one score per class for each of the N samples.
        target: (N,), integers in [0, C): each sample's class.

    Returns:
        (loss, probs): the loss, one number (a float or a 0-d array), and probs = the softmax
        of each row of input, (N, C), what the backward pass keeps.

    Math: probs[n] = softmax(input[n]) is positive and sums to 1 over the classes; the loss
    averages -log(probs[n, target[n]]) over the N samples. It must stay finite for scores
    in the hundreds or thousands, where exp(score) overflows a float64.
    """
    raise NotImplementedError("softmax each row, then average -log of each sample's target "
                              "probability; keep exp from overflowing")


def cross_entropy_backward(probs, target, grad_output):
    """dL/dinput of loss = cross_entropy(input, target).

    Args:
        probs: (N, C), softmax(input), from the forward pass.
        target: (N,), the classes.
        grad_output: dL/dloss, a number: 1.0 at the end of the chain.

    Returns:
        dinput, (N, C).

    Math: differentiate one sample's -log(softmax(input[n])[target[n]]) with respect to each
    of its C scores (the softmax mixes them all), then the mean and grad_output; the result
    is expressed in probs and target alone. Each row of dinput sums to zero.
    """
    raise NotImplementedError("differentiate -log(softmax(y)[t]) with respect to every score "
                              "y[k]; the result is short")
