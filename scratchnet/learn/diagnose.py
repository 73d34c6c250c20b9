"""Compare a learner's tensor with the right one, and name the shape of the error.

A wrong gradient is rarely random. Forgetting the 1/M of a mean makes it M times too large
everywhere; forgetting to rotate a kernel makes it match the right answer computed with the
rotated kernel; cropping the padding at the wrong offset makes it wrong only near the border.
`compare` decides pass or fail and finds the worst entry; `diagnose` tries a list
of such recognisable shapes, most specific first, and says which one fits.

What a tensor's errors are compared against comes from a `Context`: the names of its
axes (for messages), the sizes that may appear as a missing or extra factor (N, M, KH*KW, ...),
which axes are spatial and how much padding there is, masks of the entries that receive
more than one contribution, and known wrong answers with what each one means.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Context", "Comparison", "compare", "diagnose", "NO_PATTERN"]

NO_PATTERN = ("no pattern recognised; compare your code with the Math section of the docstring, "
              "one term at a time")
RTOL = 1e-7       # relative to each expected entry
ATOL = 1e-9       # relative to the largest expected entry (so a formula that cancels is fine)
RATIO_RTOL = 1e-6  # how close a ratio yours/expected must come to a size or factor to name it


@dataclass
class Context:
    """What is known about a tensor, for the diagnosis of its errors.

    Attributes:
        axes: a name per axis ("N", "C", "H", "W"), used in messages.
        sizes: (name, value, meaning) of sizes that can appear as a missing or extra factor.
        spatial: the axes of height and width of an image-shaped tensor (borders, shifts).
        padding: (PH, PW) of the operation that produced it.
        flip_axes: axes whose reversal is a recognisable mistake (a kernel's KH, KW).
        masks: (description, boolean array) pairs: "every wrong entry lies in this mask" is a
            diagnosis (entries shared by several windows, a part of a split, ...).
        alternatives: (meaning, array) pairs: known wrong answers; matching one is a diagnosis.
        factors: (name, axis, values): per-slice factors (a channel's weight) whose absence or
            excess makes the ratio yours/expected vary along one axis.
        shapes: (shape, meaning) pairs: a wrong shape with a known cause.
        square: the math has a square, whose derivative brings a factor 2 (the mean squared
            error): a ratio of one half is then worded by it.
    """
    axes: tuple[str, ...] = ()
    sizes: tuple[tuple[str, float, str], ...] = ()
    spatial: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    flip_axes: tuple[int, ...] = ()
    masks: tuple[tuple[str, np.ndarray], ...] = ()
    alternatives: tuple[tuple[str, np.ndarray], ...] = ()
    factors: tuple[tuple[str, int, np.ndarray], ...] = ()
    shapes: tuple[tuple[tuple[int, ...], str], ...] = ()
    square: bool = False

    def axis_name(self, axis: int) -> str:
        return self.axes[axis] if axis < len(self.axes) else f"axis {axis}"


@dataclass
class Comparison:
    """The outcome of comparing one tensor in one configuration."""
    name: str
    passed: bool
    index: tuple[int, ...] | None = None       # the worst entry
    yours: float | None = None
    expected: float | None = None
    difference: float = 0.0                    # |yours - expected| at the worst entry
    scaled: float = 0.0                        # worst |difference| / tolerance (pass when <= 1)
    wrong: int = 0                             # entries outside the tolerance
    total: int = 0
    problem: str | None = None                 # shape or type trouble, in words
    diagnoses: list[str] = field(default_factory=list)


def _tolerance(b: np.ndarray) -> np.ndarray:
    """The grading tolerance of each entry of the right answer ``b``."""
    return ATOL * float(np.abs(b).max(initial=0.0)) + RTOL * np.abs(b) + 1e-300


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise: a is b up to the grading tolerance (relative to b)."""
    with np.errstate(invalid="ignore"):
        return np.abs(a - b) <= _tolerance(b)


def _allclose(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and bool(_close(a, b).all())


def format_index(index: tuple[int, ...] | None) -> str:
    """``(0, 2, 1)``, as reports name an entry."""
    return "(" + ", ".join(str(int(i)) for i in (() if index is None else index)) + ")"


def _as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array__") or isinstance(value, (list, float, int, np.generic)):
        try:
            return np.asarray(value, dtype="float64")
        except (TypeError, ValueError):
            return None
    return None


def compare(name: str, yours: Any, expected: np.ndarray, context: Context | None = None
            ) -> Comparison:
    """Compare ``yours`` with ``expected`` entry by entry and diagnose a failure.

    An entry passes when |yours - expected| <= ATOL * max|expected| + RTOL * |expected|
    (float64 round-off is far below both; any real mistake far above).

    Args:
        name: the tensor's name ("dx", "dweight", ...).
        yours: what the learner's function returned for it.
        expected: the library's answer.
        context: what is known about the tensor (see `Context`).

    Returns:
        A `Comparison` with the worst entry and, on failure, the diagnoses.
    """
    ctx = context or Context()
    expected = np.asarray(expected, dtype="float64")
    arr, problem, diagnoses = None if yours is None else _as_array(yours), None, []
    if yours is None:
        problem = "is None: did the function forget a `return`, or return fewer values than it should?"
    elif arr is None:
        problem = (f"is {getattr(yours, 'described', 'a ' + type(yours).__name__)}, expected an "
                   f"array of shape {tuple(expected.shape)}")
    elif arr.dtype.kind not in "fiub":
        problem = f"has dtype {arr.dtype}, expected floating-point numbers"
    elif arr.shape != expected.shape:
        problem = f"has shape {tuple(arr.shape)}, expected {tuple(expected.shape)}"
        diagnoses = _shape_diagnoses(arr.astype("float64"), expected, ctx)
    if problem:
        return Comparison(name, False, total=expected.size, problem=problem, diagnoses=diagnoses)
    arr = arr.astype("float64")
    result = Comparison(name, True, total=expected.size)
    if expected.size == 0:
        return result
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(arr - expected)
        ratio = np.where(np.isfinite(err), err / _tolerance(expected), np.inf)
    flat = int(np.argmax(ratio))
    index = tuple(int(i) for i in np.unravel_index(flat, expected.shape))
    result.index, result.yours, result.expected = index, float(arr[index]), float(expected[index])
    result.difference, result.scaled = float(err[index]), float(ratio[index])
    result.wrong = int((~(ratio <= 1)).sum())
    result.passed = result.wrong == 0
    if not result.passed:
        result.diagnoses = diagnose(arr, expected, ctx)
    return result


# --- shapes --------------------------------------------------------------------------------
def _shape_diagnoses(arr: np.ndarray, expected: np.ndarray, ctx: Context) -> list[str]:
    for shape, meaning in ctx.shapes:
        if tuple(arr.shape) == tuple(shape):
            return [meaning]
    if arr.ndim == expected.ndim and sorted(arr.shape) == sorted(expected.shape):
        for perm in itertools.permutations(range(arr.ndim)):
            if tuple(arr.shape[p] for p in perm) == expected.shape:
                sign = _signed_match(arr.transpose(perm), expected)
                if sign is not None:
                    return [f"yours matches the right answer after {_describe_perm(perm, ctx)}: "
                            f"{_SWAPPED}{sign}"]
        return [f"its axes have the right sizes in the wrong order: {_SWAPPED}"]
    if ctx.spatial is not None and arr.ndim == expected.ndim:
        h, w = ctx.spatial
        dh, dw = arr.shape[h] - expected.shape[h], arr.shape[w] - expected.shape[w]
        others = all(arr.shape[i] == expected.shape[i] for i in range(arr.ndim) if i not in (h, w))
        if others and dh >= 0 and dw >= 0 and dh % 2 == 0 and dw % 2 == 0 and (dh or dw):
            ph, pw = dh // 2, dw // 2
            crop = [slice(None)] * arr.ndim
            crop[h], crop[w] = slice(ph, arr.shape[h] - ph), slice(pw, arr.shape[w] - pw)
            if _allclose(arr[tuple(crop)], expected):
                return [f"it matches once {ph} row(s) and {pw} column(s) are cropped from each "
                        "side: the padding was not removed at the end"]
            return [f"it is {dh} rows and {dw} columns larger: it still has the padding (({ph}, "
                    f"{pw}) on each side); crop it off"]
    if arr.ndim == expected.ndim + 1:
        for axis in range(arr.ndim):
            if tuple(np.delete(arr.shape, axis)) == expected.shape and \
                    _allclose(arr.sum(axis=axis), expected):
                return [f"it matches after summing over its axis {axis}: that sum is missing (a "
                        "gradient of a shared parameter adds the contributions of every sample "
                        "and position)"]
    if arr.ndim + 1 == expected.ndim:
        for axis in range(expected.ndim):
            if tuple(np.delete(expected.shape, axis)) == arr.shape:
                return [f"it lacks the {ctx.axis_name(axis)} axis (size {expected.shape[axis]}): "
                        "it was summed over where it should not be"]
    if arr.size == expected.size:
        if _allclose(arr.reshape(expected.shape), expected):
            return ["it has the right values in the right memory order: reshape it to "
                    f"{tuple(expected.shape)}"]
        return ["it has the right number of entries: a reshape to the wrong shape?"]
    return []


def _signed_match(moved: np.ndarray, expected: np.ndarray) -> str | None:
    """"" when ``moved`` is the right answer, ", and the sign is flipped" when it is minus it,
    else None."""
    for sign, words in ((1, ""), (-1, ", and the sign is flipped")):
        if _allclose(sign * moved, expected):
            return words
    return None


def _describe_perm(perm: tuple[int, ...], ctx: Context) -> str:
    moved = [i for i, p in enumerate(perm) if p != i]
    if len(moved) == 2:
        a, b = moved
        return f"swapping axes {ctx.axis_name(a)} and {ctx.axis_name(b)}"
    return "reordering its axes to (" + ", ".join(ctx.axis_name(p) for p in perm) + ")"


_SWAPPED = "two axes are exchanged (a transpose missing or one too many)"


# --- values --------------------------------------------------------------------------------
def diagnose(yours: np.ndarray, expected: np.ndarray, context: Context | None = None) -> list[str]:
    """Name the recognisable shape of the difference between two arrays of equal shape.

    The checks, in order: non-finite values; all zeros; a known wrong answer
    (``context.alternatives``); a constant ratio (a missing or extra factor, twice, half, a
    sign flip); a ratio that varies along one axis only (a per-channel factor); a match after
    swapping or flipping axes, or after a shift; errors confined to the border, to entries
    shared by several windows, or to one part (``context.masks``); the right values in the
    wrong places; zeros where contributions are missing.

    Args:
        yours: the learner's array.
        expected: the right one, same shape.
        context: what is known about the tensor.

    Returns:
        Sentences, most specific first; empty when ``yours`` passes or nothing fits.
    """
    ctx = context or Context()
    y = np.asarray(yours, dtype="float64")
    e = np.asarray(expected, dtype="float64")
    if y.shape != e.shape:
        return _shape_diagnoses(y, e, ctx)
    if not np.all(np.isfinite(y)):
        bad = np.argwhere(~np.isfinite(y))
        return [f"{len(bad)} entries are NaN or infinite (the first at {format_index(bad[0])}): "
                "a division by zero, an overflow, or an array used before it was filled "
                "(np.empty)"]
    close = _close(y, e)
    if close.all():
        return []
    if not y.any():
        return ["yours is all zeros: nothing was accumulated into the result, or the value it "
                "is computed from was not cached (or is zero)"]
    for meaning, alt in ctx.alternatives:
        alt = np.asarray(alt, dtype="float64")
        if alt.shape == y.shape and not _allclose(alt, e) and _allclose(y, alt):
            return [meaning]
    found = _ratio(y, e, ctx) or _axis_ratio(y, e, ctx) or _transforms(y, e, ctx) or \
        _confined(y, e, close, ctx)
    if found:
        return found
    if np.allclose(np.sort(y, axis=None), np.sort(e, axis=None), rtol=RTOL,
                   atol=ATOL * float(np.abs(e).max())):
        return ["yours has exactly the right values, in the wrong places: a reshape where a "
                "transpose was needed (or the other way round), or indices in the wrong order"]
    wrong = ~close
    if not y[wrong].any():
        return [f"every wrong entry of yours is 0 ({int(wrong.sum())} of {y.size}): some "
                "contributions were never added (a loop that stops early, a missed case)"]
    return [NO_PATTERN]


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= RATIO_RTOL * max(abs(a), abs(b))


def _named(a: float, sizes: list[tuple[str, float, str]]) -> list[str]:
    """The sizes (or a factor 2 with one) that the ratio ``a`` equals, in words."""
    named = []
    for name, value, meaning in sizes:
        inverse = f"1/({name})" if "*" in name else f"1/{name}"
        if _near(a, value):
            named.append(f"{value:g} = {name} ({meaning}): a factor {inverse} is missing (or "
                         f"a factor {name} is extra)")
        elif _near(a, 1 / value):
            named.append(f"1/{value:g} = {inverse} ({meaning}): a factor {name} is missing (or "
                         f"there is a division by {name} too many)")
        elif _near(a, value / 2):
            named.append(f"{value / 2:g} = {name}/2 ({name}: {meaning}): the factor 2/{name} "
                         "is missing entirely")
        elif _near(a, 2 * value):
            named.append(f"{2 * value:g} = 2*{name} ({name}: {meaning}): a factor {inverse} is "
                         "missing and a factor 2 is extra")
    return named


def _ratio_name(c: float, ctx: Context) -> str | None:
    """Say what a constant ratio yours/expected means, or None: by a size of the problem, or
    a product of two (N*OH*OW), where one fits; a half by the square of the math, if any."""
    sign = "the sign is flipped and " if c < 0 else ""
    a = abs(c)
    sizes = [s for s in ctx.sizes if s[1] not in (0, 1)]
    products = [(f"{n1}*{n2}", v1 * v2, f"{m1}, times {m2}")
                for i, (n1, v1, m1) in enumerate(sizes) for n2, v2, m2 in sizes[i + 1:]
                if all(not _near(v1 * v2, v) for _, v, _ in sizes)]
    named = _named(a, sizes) or _named(a, products)
    also = "".join("; or " + n for n in named)
    if _near(a, 2):
        return (f"{sign}yours is exactly twice the right answer: each contribution was added twice "
                f"(accumulated twice), or a factor 2 is extra{also}")
    if _near(a, 0.5) and (ctx.square or not named):
        return (f"{sign}yours is exactly half the right answer: a factor 2 is missing "
                + ("(the derivative of a square brings one)" if ctx.square else
                   "(or there is a division by 2 too many)") + also)
    if named:
        return f"{sign}yours is {a:.6g} times the right answer everywhere, and " + "; or ".join(named)
    return None


def _ratio(y: np.ndarray, e: np.ndarray, ctx: Context) -> list[str]:
    ee = float((e * e).sum())
    if ee == 0:
        return []
    c = float((y * e).sum()) / ee
    if not _allclose(y, c * e):
        return []
    if abs(c + 1) <= RATIO_RTOL:
        return ["the sign is flipped: yours is minus the right answer (a subtraction the wrong "
                "way round, or a minus sign too many)"]
    name = _ratio_name(c, ctx)
    if name:
        return [name]
    return [f"yours is a constant {c:.6g} times the right answer everywhere: a constant factor "
            "is wrong (compare each factor of your formula with the docstring's Math)"]


def _axis_ratio(y: np.ndarray, e: np.ndarray, ctx: Context) -> list[str]:
    """yours = c[k] * expected along one axis k, with c not constant: a per-slice factor."""
    for axis in range(y.ndim):
        if y.shape[axis] < 2 or y.size < 2 * y.shape[axis]:   # one entry per slice: no factor
            continue
        others = tuple(i for i in range(y.ndim) if i != axis)
        ee = (e * e).sum(axis=others)
        if np.any(ee == 0):
            continue
        c = (y * e).sum(axis=others) / ee
        shape = [1] * y.ndim
        shape[axis] = -1
        if not _allclose(y, c.reshape(shape) * e):
            continue
        per = ctx.axis_name(axis)
        for name, f_axis, values in ctx.factors:
            values = np.asarray(values, dtype="float64").reshape(-1)
            if f_axis != axis or values.shape != c.shape:
                continue
            for power, words in ((-1, f"divided by {name} (per {per}): the factor {name} is missing"),
                                 (1, f"times {name} (per {per}): an extra factor {name}"),
                                 (2, f"times {name} squared (per {per}): {name} is applied twice "
                                     "too often"),
                                 (-2, f"divided by {name} squared (per {per}): two factors {name} "
                                      "are missing")):
                if np.allclose(c, values ** float(power), rtol=RATIO_RTOL):
                    return [f"yours is the right answer {words}"]
        shown = ", ".join(f"{v:.4g}" for v in c[:6]) + (", ..." if c.size > 6 else "")
        return [f"the ratio yours/right is constant within each {per} but differs between them "
                f"({shown}): a per-{per} factor is wrong"]
    return []


def _transforms(y: np.ndarray, e: np.ndarray, ctx: Context) -> list[str]:
    """A match after swapping two axes of equal size, flipping axes, or shifting."""
    candidates: list[tuple[str, np.ndarray]] = []
    for a, b in itertools.combinations(range(y.ndim), 2):
        if y.shape[a] == y.shape[b] and y.shape[a] > 1:
            candidates.append((f"swapping axes {ctx.axis_name(a)} and {ctx.axis_name(b)}: {_SWAPPED}",
                               np.swapaxes(y, a, b)))
    flips = [axes for r in range(len(ctx.flip_axes), 0, -1)
             for axes in itertools.combinations(ctx.flip_axes, r)]
    for axes in flips:
        names = " and ".join(ctx.axis_name(a) for a in axes)
        what = ("rotating by 180 degrees (reversing " + names + ")" if len(axes) == 2
                else f"reversing {names}")
        candidates.append((f"{what}: the kernel is flipped where it should not be, or not "
                           "flipped where it should be", np.flip(y, axis=axes)))
    for words, moved in candidates:
        sign = _signed_match(moved, e)
        if sign is not None:
            return [f"yours matches the right answer after {words}{sign}"]
    if ctx.spatial is not None:
        h, w = ctx.spatial
        for dh, dw in itertools.product(range(-2, 3), repeat=2):
            if (dh, dw) == (0, 0) or y.shape[h] <= abs(dh) + 1 or y.shape[w] <= abs(dw) + 1:
                continue
            ys = [slice(None)] * y.ndim
            es = [slice(None)] * y.ndim
            ys[h], es[h] = _shift_slices(dh, y.shape[h])
            ys[w], es[w] = _shift_slices(dw, y.shape[w])
            part_y, part_e = y[tuple(ys)], e[tuple(es)]
            if np.abs(part_e).max(initial=0) > 0 and _allclose(part_y, part_e):
                return [f"yours is the right answer moved by {dh} row(s) and {dw} column(s) "
                        "(where both overlap): an index is off by that much, e.g. the "
                        "padding added or subtracted once too often"]
    return []


def _shift_slices(d: int, n: int) -> tuple[slice, slice]:
    """Slices such that yours[a] corresponds to expected[b] when yours is expected moved by d."""
    if d >= 0:
        return slice(d, n), slice(0, n - d)
    return slice(0, n + d), slice(-d, n)


def _confined(y: np.ndarray, e: np.ndarray, close: np.ndarray, ctx: Context) -> list[str]:
    wrong = ~close
    if ctx.spatial is not None and any(ctx.padding):
        (ph, pw), border = ctx.padding, np.zeros(y.shape, dtype=bool)
        for axis, p in zip(ctx.spatial, ctx.padding):
            index = [slice(None)] * y.ndim
            for part in (slice(0, p), slice(y.shape[axis] - p, None)) if p else ():
                index[axis] = part
                border[tuple(index)] = True
        if (~border).any() and not (wrong & ~border).any():
            return [f"yours is wrong only on border pixels (the outer {ph} row(s) and {pw} "
                    f"column(s), where the padding of ({ph}, {pw}) reaches): the padding is "
                    "handled wrongly (padded entries added onto real pixels, or an offset by the "
                    "padding missing)"]
    for words, mask in ctx.masks:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape == y.shape and (~mask).any() and mask.any() and not (wrong & ~mask).any():
            return [words]
    return []
