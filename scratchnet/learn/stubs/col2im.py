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

    Math (the adjoint of that copy):
        x_padded[n, c, oh*SH + i, ow*SW + j] += col[c, i, j, oh, ow, n]   for every entry
        x = x_padded without its padding: rows PH .. PH+H-1, columns PW .. PW+W-1
    Where receptive fields overlap, a pixel receives several entries: they add up. An entry
    that came from the padding has no pixel to go back to.
    """
    raise NotImplementedError("loop over the kernel offsets (i, j) and add each (OH, OW, N) "
                              "block onto a padded image, then crop the padding off")
