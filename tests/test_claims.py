"""The claim vocabulary (eosteach.claims) on synthetic series whose answer is known,
including the cases the lessons once got wrong: a smooth settle at 0.91 x is not
"hovering", 1.16 x is not "below", a series that starts at 3.49 x does not "rise to" it."""

from __future__ import annotations

import numpy as np
import pytest

from eosteach import claims

LEVEL = 100.0
RNG = np.random.default_rng(0)


def sharpening_then(plateau: np.ndarray, start: float = 0.6) -> np.ndarray:
    """A series that rises linearly from start x LEVEL to the plateau's first value, then follows it."""
    ramp = np.linspace(start * LEVEL, plateau[0], 30)
    return np.concatenate([ramp, plateau])


def test_hovering_just_above_the_level_passes():
    s = sharpening_then(LEVEL * (1.05 + 0.05 * np.sin(np.arange(60)) + 0.02 * RNG.normal(size=60)))
    c = claims.hovers_at(s, LEVEL)
    assert c and c.measured["from index"] <= 35  # within the plateau's first few values (it starts at 30)
    assert 1.0 < c.measured["median / level"] < 1.1


def test_a_smooth_settle_at_091_is_not_hovering():
    # heavy-ball in the old lesson 4: rises, then settles smoothly at 0.91 x its threshold
    s = np.concatenate([np.linspace(50, 91, 40), np.full(40, 91.0)])
    assert not claims.hovers_at(s, LEVEL)
    assert claims.settles_at(s, 0.91 * LEVEL, rel=0.01)
    assert claims.settles_below(s, LEVEL)


def test_a_plateau_20_percent_above_is_not_hovering():
    s = sharpening_then(LEVEL * (1.2 + 0.03 * np.sin(np.arange(60))))
    assert not claims.hovers_at(s, LEVEL)


def test_wide_excursions_fail_hovering():
    tail = LEVEL * np.where(np.arange(60) % 2 == 0, 0.7, 1.4)
    assert not claims.hovers_at(sharpening_then(tail), LEVEL)


def test_a_one_record_pause_in_the_rise_is_not_the_first_peak():
    # fc-relu at eta = 2/30 in lesson 3 (S / (2/eta)): arrives at 0.971, pauses at 0.969, then
    # overshoots to 1.177 before it hovers; the settled part must start after the 1.177
    rise = [0.6, 0.8, 0.92, 0.971, 0.969, 0.999, 1.094, 1.177]
    tail = 1.08 + 0.04 * np.sin(np.arange(30))
    s = LEVEL * np.concatenate([rise, tail])
    c = claims.hovers_at(s, LEVEL)
    assert c.measured["from index"] == len(rise)  # the value after the top, 1.177
    assert c


def test_hovering_needs_to_arrive_and_stay_long_enough():
    assert not claims.hovers_at(np.linspace(10, 80, 50), LEVEL)  # never arrives
    assert not claims.hovers_at(np.concatenate([np.linspace(10, 80, 50), [100, 101]]), LEVEL)  # too short


def test_sharpening_through_the_level_is_not_hovering():
    # gradient flow in lesson 3: rises smoothly from 0.82 x to 1.29 x (median after arrival 1.14 x)
    s = np.linspace(82, 129, 40)
    c = claims.hovers_at(s, LEVEL)
    assert not c
    # and a slow drift upwards through the band after an overshoot is not hovering either
    drift = np.concatenate([np.linspace(60, 118, 20), [92, 100], np.linspace(98, 112, 30)])
    c = claims.hovers_at(drift, LEVEL)
    assert not c and c.measured["trend / level"] > claims.HOVER_TREND


def test_the_overshoot_is_left_out_of_the_hover_window():
    # the edge of stability: a rise, an overshoot to 1.25 x, a dip to 0.88 x, then hovering at 1.02 x
    settled = LEVEL * (1.02 + 0.02 * np.sin(1.7 * np.arange(40)))
    s = np.concatenate([np.linspace(60, 125, 25), [104, 88], settled])
    c = claims.hovers_at(s, LEVEL)
    assert c and c.measured["from index"] == 25  # just after the peak at index 24
    assert c.measured["median / level"] == pytest.approx(np.median(np.concatenate([[1.04, 0.88], settled / LEVEL])))


def test_oscillates_about():
    # a zig-zag about the level, mostly just below it (the curvature along the gradient at the edge)
    zigzag = LEVEL * (0.985 + 0.02 * (-1.0) ** np.arange(40))
    c = claims.oscillates_about(zigzag, LEVEL)
    assert c and c.measured["fraction above"] == pytest.approx(0.5)
    assert "fraction above the level in [0.1, 0.9]" in c.band
    # always below: not about the level, however close
    assert not claims.oscillates_about(np.full(40, 0.99 * LEVEL), LEVEL)
    # always above
    assert not claims.oscillates_about(np.full(40, 1.01 * LEVEL), LEVEL)
    # crosses the level but its median is 5% off
    far = LEVEL * (0.95 + 0.06 * (-1.0) ** np.arange(40) * (np.arange(40) % 4 == 0))
    assert not claims.oscillates_about(far, LEVEL)
    # every value counts: the first points are not dropped
    assert claims.oscillates_about(zigzag, LEVEL).measured["points"] == 40
    with pytest.raises(ValueError, match="above"):
        claims.oscillates_about(zigzag, LEVEL, above=(0.9, 0.1))


def test_116_is_not_below():
    # mini-batch SGD in the old lesson 7: ends at 1.16 x 2/eta
    s = np.concatenate([np.linspace(40, 110, 30), LEVEL * (1.16 + 0.02 * np.sin(np.arange(30)))])
    assert not claims.settles_below(s, LEVEL)
    assert not claims.stays_below(s, LEVEL)
    assert claims.settles_below(0.6 * s, LEVEL)


def test_starting_above_is_not_rising_to():
    # MSE in the old lesson 7: starts at 3.49 x 2/eta, drops, comes back near the edge
    s = np.concatenate([[3.49 * LEVEL], np.linspace(0.5 * LEVEL, 1.2 * LEVEL, 30)])
    assert not claims.rises_to(s, LEVEL)
    assert not claims.starts_below(s, LEVEL)
    assert claims.reaches(s, LEVEL)
    assert claims.rises_to(s[1:], LEVEL)


def test_rises_to_band_says_what_it_tests():
    # the band reads "first <= 0.95 x level <= max": a max of 0.96 x level passes, 0.94 x does not
    s = np.linspace(0.5, 0.96, 20) * LEVEL
    claim = claims.rises_to(s, LEVEL)
    assert claim and claim.band == "first <= 0.95 x level <= max"
    assert not claims.rises_to(np.linspace(0.5, 0.94, 20) * LEVEL, LEVEL)


def test_rises_keeps_rising_and_falls():
    up = np.linspace(1, 3, 40)
    flat_end = np.concatenate([np.linspace(1, 3, 30), np.full(30, 3.0)])
    assert claims.rises(up) and claims.keeps_rising(up)
    assert claims.rises(flat_end) and not claims.keeps_rising(flat_end)
    assert claims.falls(up[::-1]) and not claims.rises(up[::-1])
    assert not claims.rises(np.linspace(1, 1.1, 40))  # 10% is not "rises" (band: 20%)


def test_falls_non_monotonically():
    k = np.arange(400)
    wiggly = np.exp(-k / 200) * (1 + 0.1 * np.sin(k))
    assert claims.falls_non_monotonically(wiggly, window=50)
    assert not claims.falls_non_monotonically(np.exp(-k / 200), window=50)  # monotone: never rises
    bumpy_trend = np.concatenate([wiggly[:200], wiggly[:200]])  # goes back up halfway
    assert not claims.falls_non_monotonically(bumpy_trend, window=50)


def test_about_tracks_below_above():
    assert claims.about(21.0, 20.0) and not claims.about(23.0, 20.0)
    assert claims.about(23.0, 20.0, rel=0.2)
    a = np.linspace(1, 2, 50)
    assert claims.tracks(a * 1.02, a) and not claims.tracks(a * 1.1, a)
    # 2% of the maximum is not 2% at each point: an offset of 0.03 is 1.5% of max |b| = 2 but 3%
    # of the first point (b = 1)
    offset = a + 0.03
    assert claims.tracks(offset, a, rel=0.02)
    assert not claims.tracks(offset, a, rel=0.02, pointwise=True)
    assert claims.tracks(a * 1.019, a, rel=0.02, pointwise=True)
    assert claims.tracks(a * 1.019, a, rel=0.02, pointwise=True).band == "|a - b| <= 0.02 x |b| at every point"
    assert claims.below(1.0, 2.0) and not claims.below(2.0, 2.0)
    assert claims.above(3.0, 2.0) and not claims.above(2.0, 2.0)
    assert claims.stays_above(a, 0.5) and not claims.stays_above(a, 1.0)


def test_report_prints_stable_lines_and_raises_with_the_numbers(capsys):
    good = claims.about(20.5, 20.0, text="Q is about 20")
    assert claims.report(good) is None
    out = capsys.readouterr().out
    assert out == "✓ Q is about 20 [within 0.1 x 20]: True\n"  # no measured number in it
    bad = claims.about(30.0, 20.0, text="Q is about 20")
    with pytest.raises(AssertionError, match="value = 30"):
        claims.report(good, bad)
    assert "✗ Q is about 20" in capsys.readouterr().out
    claims.measured(good)
    assert "value = 20.5" in capsys.readouterr().out
    claims.measured(claims.holds(True, "an identity", "exact"))
    assert capsys.readouterr().out == "an identity: True [exact]\n"


@pytest.mark.parametrize("call", [
    lambda: claims.hovers_at([1.0, np.nan], 1.0),
    lambda: claims.hovers_at([1.0, 2.0], -1.0),
    lambda: claims.hovers_at([], 1.0),
    lambda: claims.about(1.0, 1.0, rel=0),
    lambda: claims.tracks([1, 2], [1, 2, 3]),
    lambda: claims.tracks([1, 2], [0, 2], pointwise=True),
    lambda: claims.falls_non_monotonically([1, 2, 3], window=5),
    lambda: claims.report(),
    lambda: claims.report(True),
])
def test_bad_input_is_a_value_error(call):
    with pytest.raises(ValueError):
        call()
