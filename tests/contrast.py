"""WCAG 2 contrast, as pure functions: CSS colours, alpha compositing, relative luminance.

tests/test_browser.py collects each visible text's computed ``color`` and the backgrounds
behind it in Chromium and judges them here; tests/test_contrast.py checks the arithmetic on
known values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

__all__ = ["RGBA", "composite", "contrast_ratio", "effective_background", "is_large_text",
           "luminance", "minimum_ratio", "parse_color"]

#: WCAG 1.4.3 (AA): 4.5:1 for text, 3:1 for large text
NORMAL_MINIMUM = 4.5
LARGE_MINIMUM = 3.0

_RGB = re.compile(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+)(%?))?\s*\)")


class RGBA(NamedTuple):
    """sRGB channels 0-255 and alpha 0-1."""

    r: float
    g: float
    b: float
    a: float = 1.0


WHITE = RGBA(255, 255, 255)


def parse_color(css: str) -> RGBA:
    """A computed CSS colour: ``#rrggbb``, ``rgb(...)``, ``rgba(...)`` or ``transparent``."""
    css = css.strip().lower()
    if css == "transparent":
        return RGBA(0, 0, 0, 0.0)
    if re.fullmatch(r"#[0-9a-f]{6}", css):
        return RGBA(*(int(css[i:i + 2], 16) for i in (1, 3, 5)))
    match = _RGB.fullmatch(css)
    if match is None:
        raise ValueError(f"cannot read the colour {css!r}")
    r, g, b, alpha, percent = match.groups()
    a = 1.0 if alpha is None else float(alpha) / (100 if percent else 1)
    return RGBA(float(r), float(g), float(b), a)


def composite(top: RGBA, bottom: RGBA) -> RGBA:
    """``top`` painted over an opaque ``bottom`` (source-over): an opaque colour."""
    a = top.a
    return RGBA(top.r * a + bottom.r * (1 - a), top.g * a + bottom.g * (1 - a),
                top.b * a + bottom.b * (1 - a))


def effective_background(layers: Iterable[RGBA], canvas: RGBA = WHITE) -> RGBA:
    """The opaque colour behind a text: ``layers`` are the backgrounds from the text's own
    element outwards; they are walked out to the first opaque one (else the white canvas)
    and composited back in."""
    stack: list[RGBA] = []
    for layer in layers:
        if layer.a <= 0:
            continue
        stack.append(layer)
        if layer.a >= 1:
            break
    else:
        stack.append(canvas)
    colour = stack.pop()
    for layer in reversed(stack):
        colour = composite(layer, colour)
    return colour


def _linear(channel: float) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: RGBA) -> float:
    """WCAG relative luminance of an opaque colour: 0 (black) to 1 (white)."""
    return (0.2126 * _linear(colour.r) + 0.7152 * _linear(colour.g)
            + 0.0722 * _linear(colour.b))


def contrast_ratio(foreground: RGBA, background: RGBA) -> float:
    """WCAG contrast ratio, 1 to 21; a translucent ``foreground`` is composited first."""
    if background.a < 1:
        background = composite(background, WHITE)
    if foreground.a < 1:
        foreground = composite(foreground, background)
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def is_large_text(font_size_px: float, font_weight: int) -> bool:
    """WCAG large text: 18 pt (24 px), or 14 pt (18.66 px) bold."""
    return font_size_px >= 24 or (font_size_px >= 18.66 and font_weight >= 700)


def minimum_ratio(font_size_px: float, font_weight: int) -> float:
    return LARGE_MINIMUM if is_large_text(font_size_px, font_weight) else NORMAL_MINIMUM
