"""The words the lessons use for their results, as checks with documented bands.

A lesson that says "the sharpness hovers at 2/eta" or "SGD settles below 2/eta" checks the
sentence with the function of the same name. Each function returns a ``Claim``: its
``holds`` is the verdict, ``band`` says in words what was required, and ``measured`` holds
the numbers that decided it. ``report(*claims)`` prints one stable line per claim (the
sentence, the band and the verdict, no measured numbers, so that the line is the same at
every scale and can be compared by nbval) and raises AssertionError, with the numbers,
when a claim fails; ``measured(*claims)`` prints the numbers, for a cell that is not
compared.

The bands follow how the papers use the words. Levels are thresholds such as 2/eta; all
bands are multiples of the level.

============================  =====================================================================
word                          band
============================  =====================================================================
``reaches``                   max(values) >= 0.95 x level
``starts_below``              values[0] <= 0.95 x level
``rises_to``                  starts_below and reaches
``hovers_at``                 on the values after the first peak that follows the arrival (the first
                              value >= 0.95 x level; a peak is a value below neither of the next two),
                              i.e. without the rest of the rise and the first overshoot: median in [0.95, 1.15] x level, 10th-90th percentiles in
                              [0.9, 1.25] x level, and no trend (the medians of the two halves within
                              0.05 x level). Cohen et al. (2021): "hovers right at, or just above,
                              2/eta". A smooth settle at 0.91 x, a plateau at 1.2 x, or a curve that
                              keeps rising through the level (gradient flow) is not hovering.
``oscillates_about``          median within (1 +- rel) x level (rel = 0.03) and the fraction of the
                              values above the level in [0.1, 0.9]: it crosses the level both ways,
                              at every value (nothing left out). For a series that swings about a
                              level, such as the curvature along the gradient from step to step.
``settles_at``                the last third of the values within (1 +- rel) x level (rel = 0.05)
``settles_below``             the last half of the values all strictly below the level
``stays_below``               every value strictly below the level
``stays_above``               every value strictly above the level
``rises``                     median of the last quarter >= factor x median of the first quarter
                              (factor = 1.2)
``keeps_rising``              the last quarter's median is above the third quarter's median by at
                              least rel (0.02): still rising at the end, not flat
``falls``                     median of the last quarter <= median of the first quarter / factor
                              (factor = 1.2)
``falls_non_monotonically``   rises at >= 10% of steps, yet each window's mean is below the
                              previous window's (windows of ``window`` values)
``about``                     |value - target| <= rel x |target| (rel = 0.1: "about")
``tracks``                    max |a - b| / max |b| <= rel (rel = 0.05); with pointwise=True,
                              |a - b| <= rel x |b| at every point
``below`` / ``above``         value < level / value > level
============================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import validate

REACH = 0.95
HOVER_MEDIAN = (0.95, 1.15)
HOVER_SPREAD = (0.9, 1.25)
HOVER_TREND = 0.05


@dataclass
class Claim:
    """A sentence of a lesson and whether the data bear it out.

    ``text``: the sentence as the lesson states it; ``holds``: the verdict; ``band``: the
    requirement in words; ``measured``: the numbers that decided it (floats).
    """

    text: str
    holds: bool
    band: str
    measured: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.holds)

    def __str__(self) -> str:
        return f"{self.text} [{self.band}]: {bool(self.holds)}"

    def detail(self) -> str:
        numbers = ", ".join(f"{k} = {_fmt(v)}" for k, v in self.measured.items())
        numbers = f" ({numbers})" if numbers else ""
        return f"{self.text}: {bool(self.holds)}{numbers} [{self.band}]"


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)


def _series(name: str, values, min_len: int = 1) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.size < min_len:
        raise ValueError(f"{name} must hold at least {min_len} values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; it holds NaN or inf (did the run diverge?)")
    return a


def _level(name: str, level) -> float:
    level = float(level)
    if not (np.isfinite(level) and level > 0):
        raise ValueError(f"{name} must be a positive finite number, got {level!r}")
    return level


def _text(text, default: str) -> str:
    return default if text is None else str(text)


def reaches(values, level, text=None) -> Claim:
    """Whether the series gets to the level: max >= 0.95 x level."""
    s, lv = _series("values", values), _level("level", level)
    return Claim(_text(text, "reaches the level"), bool(s.max() >= REACH * lv), f"max >= {REACH} x level",
                 {"max / level": s.max() / lv, "first index": first_reach(s, lv)})


def first_reach(values, level, at: float = REACH):
    """Index of the first value >= ``at`` x level, or None when there is none."""
    s, lv = _series("values", values), _level("level", level)
    hits = np.flatnonzero(s >= at * lv)
    return int(hits[0]) if hits.size else None


def starts_below(values, level, text=None) -> Claim:
    """Whether the series starts below the level: values[0] <= 0.95 x level."""
    s, lv = _series("values", values), _level("level", level)
    return Claim(_text(text, "starts below the level"), bool(s[0] <= REACH * lv), f"first <= {REACH} x level",
                 {"first / level": s[0] / lv})


def rises_to(values, level, text=None) -> Claim:
    """Starts below the level (<= 0.95 x) and later reaches it (>= 0.95 x)."""
    s, lv = _series("values", values, 2), _level("level", level)
    ok = bool(s[0] <= REACH * lv and s.max() >= REACH * lv)
    return Claim(_text(text, "rises to the level"), ok, f"first <= {REACH} x level <= max",
                 {"first / level": s[0] / lv, "max / level": s.max() / lv})


def _first_peak(s: np.ndarray, start: int) -> int:
    """Index of the first value from ``start`` on that is below neither of the next two (the
    top of the first overshoot), or the last index when the series rises to its end. Two
    values ahead, not one, so that a one-record pause inside the rise (fc-relu at eta = 2/30
    in lesson 3: 0.971, 0.969, 0.999, 1.094, 1.177 x level) is not taken for the top."""
    for i in range(start, s.size - 1):
        if s[i] >= s[i + 1] and (i + 2 >= s.size or s[i] >= s[i + 2]):
            return i
    return s.size - 1


def hovers_at(values, level, text=None, min_points: int = 5) -> Claim:
    """Hovers right at, or just above, the level (Cohen et al. 2021).

    Judged on the settled part: the values after the first peak that follows the arrival
    (the first value >= 0.95 x level; a peak is a value below neither of the next two), so
    that the rest of the rise and the first overshoot are left out. There, the median lies in [0.95, 1.15] x level, the 10th and 90th
    percentiles in [0.9, 1.25] x level, and the series has no trend: the medians of its
    first and second halves differ by at most 0.05 x level (a curve that keeps sharpening
    through the level, as gradient flow does, is not hovering). At least ``min_points``
    values must be in the settled part, else the claim fails (too short to tell)."""
    s, lv = _series("values", values), _level("level", level)
    band = (f"after the first peak past {REACH} x level: median in [{HOVER_MEDIAN[0]}, {HOVER_MEDIAN[1]}] x, "
            f"10-90% in [{HOVER_SPREAD[0]}, {HOVER_SPREAD[1]}] x, halves' medians within {HOVER_TREND} x")
    arrival = first_reach(s, lv)
    start = None if arrival is None else _first_peak(s, arrival) + 1
    if start is None or s.size - start < min_points:
        return Claim(_text(text, "hovers at the level"), False, band,
                     {"max / level": s.max() / lv, "points settled": 0 if start is None else s.size - start})
    tail = s[start:] / lv
    med, p10, p90 = np.median(tail), np.percentile(tail, 10), np.percentile(tail, 90)
    half = tail.size // 2
    trend = np.median(tail[half:]) - np.median(tail[:half])
    ok = bool(HOVER_MEDIAN[0] <= med <= HOVER_MEDIAN[1] and p10 >= HOVER_SPREAD[0] and p90 <= HOVER_SPREAD[1]
              and abs(trend) <= HOVER_TREND)
    return Claim(_text(text, "hovers at the level"), ok, band,
                 {"median / level": med, "p10 / level": p10, "p90 / level": p90, "trend / level": trend,
                  "from index": start, "points": tail.size})


def oscillates_about(values, level, rel: float = 0.03, above=(0.1, 0.9), text=None) -> Claim:
    """Oscillates about the level: on ALL the values (no settled part is picked out), the
    median lies within (1 +- rel) x level and the fraction of values strictly above the level
    lies in [above[0], above[1]], so that the series is on both sides of the level, each at a
    share of the points. Unlike ``hovers_at`` ("right at, or just above") it allows a series
    that sits mostly just below the level. rel = 0.03, above = (0.1, 0.9) by default."""
    s, lv = _series("values", values, 2), _level("level", level)
    rel = validate.positive("rel", rel)
    try:
        lo, hi = (float(a) for a in above)
    except (TypeError, ValueError):
        raise ValueError(f"above must be a pair (low, high) of fractions, got {above!r}") from None
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"above must be a pair of fractions with 0 <= low < high <= 1, got {above!r}")
    med, frac = float(np.median(s) / lv), float(np.mean(s > lv))
    ok = bool(abs(med - 1) <= rel and lo <= frac <= hi)
    return Claim(_text(text, "oscillates about the level"), ok,
                 f"median within (1 +- {rel:g}) x level, fraction above the level in [{lo:g}, {hi:g}]",
                 {"median / level": med, "fraction above": frac, "points": s.size})


def settles_at(values, level, rel: float = 0.05, text=None) -> Claim:
    """The last third of the values all lie within (1 +- rel) x level."""
    s, lv = _series("values", values, 3), _level("level", level)
    rel = validate.positive("rel", rel)
    tail = s[-max(1, s.size // 3):] / lv
    ok = bool(np.all(np.abs(tail - 1) <= rel))
    return Claim(_text(text, "settles at the level"), ok, f"last third within (1 +- {rel:g}) x level",
                 {"min / level": tail.min(), "max / level": tail.max()})


def settles_below(values, level, text=None) -> Claim:
    """Every value of the last half lies strictly below the level."""
    s, lv = _series("values", values, 2), _level("level", level)
    tail = s[s.size // 2:] / lv
    return Claim(_text(text, "settles below the level"), bool(tail.max() < 1), "last half all < level",
                 {"max / level (last half)": tail.max(), "median / level (last half)": np.median(tail)})


def stays_below(values, level, text=None) -> Claim:
    """Every value lies strictly below the level."""
    s, lv = _series("values", values), _level("level", level)
    return Claim(_text(text, "stays below the level"), bool(s.max() < lv), "every value < level",
                 {"max / level": s.max() / lv})


def stays_above(values, level, text=None) -> Claim:
    """Every value lies strictly above the level."""
    s, lv = _series("values", values), _level("level", level)
    return Claim(_text(text, "stays above the level"), bool(s.min() > lv), "every value > level",
                 {"min / level": s.min() / lv})


def _quarters(s: np.ndarray):
    q = max(1, s.size // 4)
    return s[:q], s[-q:]


def rises(values, factor: float = 1.2, text=None) -> Claim:
    """The median of the last quarter is at least ``factor`` x the median of the first quarter."""
    s, factor = _series("values", values, 4), validate.positive("factor", factor)
    first, last = _quarters(s)
    ratio = np.median(last) / np.median(first) if np.median(first) != 0 else np.inf
    return Claim(_text(text, "rises"), bool(np.median(last) >= factor * np.median(first)),
                 f"median(last quarter) >= {factor:g} x median(first quarter)",
                 {"last / first (medians)": ratio})


def keeps_rising(values, rel: float = 0.02, text=None) -> Claim:
    """Still rising at the end: the last quarter's median exceeds the third quarter's by >= rel."""
    s, rel = _series("values", values, 4), validate.positive("rel", rel)
    q = s.size // 4
    third, last = s[-2 * q:-q], s[-q:]
    ratio = np.median(last) / np.median(third)
    return Claim(_text(text, "keeps rising"), bool(ratio >= 1 + rel),
                 f"median(last quarter) >= (1 + {rel:g}) x median(third quarter)", {"last / third (medians)": ratio})


def falls(values, factor: float = 1.2, text=None) -> Claim:
    """The median of the last quarter is at most the first quarter's median / ``factor``."""
    s, factor = _series("values", values, 4), validate.positive("factor", factor)
    first, last = _quarters(s)
    return Claim(_text(text, "falls"), bool(np.median(last) * factor <= np.median(first)),
                 f"median(last quarter) <= median(first quarter) / {factor:g}",
                 {"first / last (medians)": np.median(first) / np.median(last)})


def falls_non_monotonically(values, window: int, text=None) -> Claim:
    """Rises at >= 10% of steps, yet every ``window``-long block's mean is below the one before."""
    s = _series("values", values, 2)
    window = int(window)
    if window < 1 or 2 * window > s.size:
        raise ValueError(f"window must be in [1, {s.size // 2}] for {s.size} values, got {window}")
    up = float(np.mean(np.diff(s) > 0))
    n = s.size // window
    means = s[: n * window].reshape(n, window).mean(axis=1)
    ok = bool(up >= 0.1 and np.all(np.diff(means) < 0))
    return Claim(_text(text, "falls, non-monotonically"), ok,
                 f"rises at >= 10% of steps; every {window}-step mean below the previous",
                 {"fraction of steps up": up, "window-to-window comparisons": n - 1,
                  "comparisons where the mean fell": int(np.sum(np.diff(means) < 0))})


def about(value, target, rel: float = 0.1, text=None) -> Claim:
    """|value - target| <= rel x |target| ("about": rel = 0.1)."""
    v, t, rel = float(value), float(target), validate.positive("rel", rel)
    ok = bool(np.isfinite(v) and abs(v - t) <= rel * abs(t))
    return Claim(_text(text, f"about {t:g}"), ok, f"within {rel:g} x {t:g}", {"value": v, "target": t})


def tracks(a, b, rel: float = 0.05, text=None, pointwise: bool = False) -> Claim:
    """Series ``a`` follows ``b``: max |a - b| / max |b| <= rel, the deviation measured against
    the scale of the whole series. With ``pointwise=True`` every point must agree on its own,
    |a_i - b_i| <= rel x |b_i| ("each within 2%"), which is stricter where |b| is small."""
    x, y, rel = _series("a", a), _series("b", b), validate.positive("rel", rel)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same length, got {x.size} and {y.size}")
    if pointwise:
        if np.any(y == 0):
            raise ValueError("b must be nonzero everywhere when pointwise=True (a relative deviation)")
        dev = float(np.max(np.abs(x - y) / np.abs(y)))
        return Claim(_text(text, "tracks"), bool(dev <= rel), f"|a - b| <= {rel:g} x |b| at every point",
                     {"max |a - b| / |b|": dev})
    dev = float(np.max(np.abs(x - y)) / np.max(np.abs(y)))
    return Claim(_text(text, "tracks"), bool(dev <= rel), f"max |a - b| <= {rel:g} x max |b|",
                 {"max deviation / max |b|": dev})


def below(value, level, text=None) -> Claim:
    """value < level."""
    v, lv = float(value), float(level)
    return Claim(_text(text, "below"), bool(v < lv), "value < level", {"value": v, "level": lv})


def above(value, level, text=None) -> Claim:
    """value > level."""
    v, lv = float(value), float(level)
    return Claim(_text(text, "above"), bool(v > lv), "value > level", {"value": v, "level": lv})


def holds(flag, text: str, band: str, **measured) -> Claim:
    """A claim decided elsewhere (an exact identity, a boolean property), with its band in words."""
    return Claim(str(text), bool(flag), str(band), dict(measured))


def report(*claims: Claim) -> None:
    """Print one stable line per claim; raise AssertionError with the numbers if any fails.
    Returns None, so that a cell ending in ``report(...)`` shows only the printed lines."""
    if not claims:
        raise ValueError("report needs at least one claim")
    for c in claims:
        if not isinstance(c, Claim):
            raise ValueError(f"report takes Claim objects, got {type(c).__name__}")
        print(("✓ " if c else "✗ ") + str(c))
    failed = [c.detail() for c in claims if not c]
    if failed:
        raise AssertionError("claims not borne out by the data:\n  " + "\n  ".join(failed))


def measured(*claims: Claim) -> None:
    """Print each claim with the numbers that decided it (for a cell nbval does not compare)."""
    for c in claims:
        print(c.detail())
