"""The WCAG contrast arithmetic of tests/contrast.py, on known values."""

from __future__ import annotations

import pytest
from contrast import (
    RGBA,
    composite,
    contrast_ratio,
    effective_background,
    is_large_text,
    minimum_ratio,
    parse_color,
)

BLACK, WHITE = RGBA(0, 0, 0), RGBA(255, 255, 255)


def test_black_on_white_is_21_and_a_colour_on_itself_is_1() -> None:
    assert contrast_ratio(BLACK, WHITE) == pytest.approx(21)
    assert contrast_ratio(WHITE, BLACK) == pytest.approx(21)
    assert contrast_ratio(parse_color("#6b7280"), parse_color("#6b7280")) == pytest.approx(1)


@pytest.mark.parametrize(("foreground", "background", "ratio"), [
    ("#777777", "#ffffff", 4.48),  # the classic just-too-light grey
    ("#767676", "#ffffff", 4.54),  # the lightest grey that passes on white
    ("#ff0000", "#ffffff", 4.00),
    ("#0000ff", "#ffffff", 8.59),
    ("#6b7280", "#f3f4f6", 4.39),  # the page's old muted text on its old received bubble
])
def test_known_ratios(foreground: str, background: str, ratio: float) -> None:
    measured = contrast_ratio(parse_color(foreground), parse_color(background))
    assert measured == pytest.approx(ratio, abs=0.01)


def test_computed_css_colours_are_read() -> None:
    assert parse_color("rgb(31, 41, 55)") == RGBA(31, 41, 55, 1.0)
    assert parse_color("rgba(0, 0, 0, 0.12)") == RGBA(0, 0, 0, 0.12)
    assert parse_color("rgb(0 0 0 / 50%)") == RGBA(0, 0, 0, 0.5)
    assert parse_color("rgba(0, 0, 0, 0)").a == 0
    assert parse_color("transparent").a == 0
    assert parse_color("#DBEAFE") == RGBA(219, 234, 254)
    with pytest.raises(ValueError):
        parse_color("oklch(0.5 0.1 200)")


def test_translucent_colours_are_composited() -> None:
    grey = composite(RGBA(0, 0, 0, 0.5), WHITE)
    assert grey == RGBA(127.5, 127.5, 127.5)
    # half-transparent black text on white reads as mid grey, not as black
    assert contrast_ratio(RGBA(0, 0, 0, 0.5), WHITE) == pytest.approx(
        contrast_ratio(grey, WHITE))
    assert contrast_ratio(RGBA(0, 0, 0, 0.5), WHITE) < 4.5


def test_the_background_is_the_first_opaque_layer_outwards_with_translucent_ones_on_it() -> None:
    blue = parse_color("#2563eb")
    assert effective_background([RGBA(0, 0, 0, 0), blue, WHITE]) == blue
    tinted = effective_background([RGBA(0, 0, 0, 0.5), WHITE, BLACK])
    assert tinted == RGBA(127.5, 127.5, 127.5)
    assert effective_background([]) == WHITE  # nothing painted: the canvas
    assert effective_background([RGBA(0, 0, 0, 0)], canvas=BLACK) == BLACK


def test_large_text_per_wcag() -> None:
    assert is_large_text(24, 400) and is_large_text(18.66, 700)
    assert not is_large_text(23.9, 400) and not is_large_text(18.66, 600)
    assert not is_large_text(18.5, 700)
    assert minimum_ratio(15, 400) == 4.5 and minimum_ratio(30, 400) == 3.0
