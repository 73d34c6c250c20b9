import numpy as np


def col2im(col, stride, padding, size):
    """Add every column entry back onto the image pixel it was copied from.

    Args:
        col: (C, KH, KW, OH, OW, N), with the batch axis LAST, as im2col lays it out:
            im2col copied x_padded[n, c, oh*SH + i, ow*SW + j] into col[c, i, j, oh, ow, n].
        stride: (SH, SW).  padding: (PH, PW).
        size: (H, W) of the image to rebuild.

    Returns:
        x, shape (N, C, H, W).

    Math (what must hold): x is the adjoint of that copy: every entry of col is added onto
    the pixel it was copied from; where receptive fields overlap, a pixel receives several
    entries, and an entry that came from the padding has no pixel to go back to.
    """
    raise NotImplementedError("loop over the kernel offsets (i, j) and add each (OH, OW, N) "
                              "block onto a padded image, then crop the padding off")
