"""Pictograms (chess pieces, card suits, dice, zodiac and weather signs) rendered from the
DejaVu and STIX fonts matplotlib ships, with the jitter of the printed glyphs.

A font is used for a set only if it draws every character of it: a code point a font lacks
comes out as the font's .notdef box (DejaVu) or as nothing (STIX), so each character is
compared with the rendering of a code point that Unicode leaves unassigned.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version

from raynas.data.builtin import RawImages, builtin
from raynas.data.builtin.glyphs import _DEJAVU, _STIX, _glyph_crop, render_set

CANDIDATE_FONTS = _DEJAVU + _STIX
UNASSIGNED = "\u0378"  # unassigned in Unicode: a font draws for it what it draws for any character it lacks

CHESS = [("white king", "♔"), ("white queen", "♕"), ("white rook", "♖"), ("white bishop", "♗"),
         ("white knight", "♘"), ("white pawn", "♙"), ("black king", "♚"), ("black queen", "♛"),
         ("black rook", "♜"), ("black bishop", "♝"), ("black knight", "♞"), ("black pawn", "♟")]
SUITS = [("black spade", "♠"), ("white heart", "♡"), ("white diamond", "♢"), ("black club", "♣"),
         ("white spade", "♤"), ("black heart", "♥"), ("black diamond", "♦"), ("white club", "♧")]
DICE = [(f"die {i + 1}", chr(0x2680 + i)) for i in range(6)]
ZODIAC = [(name, chr(0x2648 + i)) for i, name in enumerate(
    ["aries", "taurus", "gemini", "cancer", "leo", "virgo", "libra", "scorpius", "sagittarius", "capricorn",
     "aquarius", "pisces"])]
WEATHER = [("sun", "☀"), ("cloud", "☁"), ("umbrella", "☂"), ("snowman", "☃"), ("comet", "☄"),
           ("lightning", "☇"), ("thunderstorm", "☈"), ("umbrella with rain", "☔"), ("snowflake", "❄"),
           ("high voltage", "⚡")]


@lru_cache(maxsize=None)
def _ink(char: str, font_name: str) -> tuple[tuple[int, int], bytes] | None:
    """The tight rendering of one character (size and pixels), None if the font draws nothing."""
    try:
        img = _glyph_crop(char, font_name)
    except RuntimeError:
        return None
    return img.size, img.tobytes()


def has_glyph(char: str, font_name: str) -> bool:
    """True if the font draws ``char`` itself, not its .notdef box or nothing."""
    ink = _ink(char, font_name)
    return ink is not None and ink != _ink(UNASSIGNED, font_name)


def fonts_for(chars: list[str], candidates: list[str] = CANDIDATE_FONTS) -> list[str]:
    """The candidate fonts that draw every character of ``chars``."""
    fonts = [f for f in candidates if all(has_glyph(c, f) for c in chars)]
    if len(fonts) < 2:
        raise RuntimeError(f"only {fonts} of matplotlib's fonts draw all of {''.join(chars)!r}")
    return fonts


def symbol_dataset(classes: list[tuple[str, str]], per_class: int, seed: int, differs: str) -> RawImages:
    """Every class rendered in every font that draws all the set's characters, with glyph jitter."""
    chars = [c for _, c in classes]
    fonts = fonts_for(chars)
    images, labels = render_set(chars, fonts, per_class, seed)
    return RawImages(images, labels, [n for n, _ in classes], {
        "source": "fonts shipped with matplotlib", "package": f"matplotlib {version('matplotlib')}",
        "fonts": fonts, "characters": [f"U+{ord(c):04X}" for c in chars],
        "jitter": "scale U(0.85,1.1), rotation U(-8,8) deg, shear U(-0.15,0.15), shift U(-3,3) px",
        "seed": seed, "differs": differs})


@builtin("chess-pieces", domain="pictograms", seed=41,
         description="12 chess pieces, white (outline) and black (filled), in 6 DejaVu fonts, 32x32; "
                     "tall figures, classes no other pictogram set has")
def chess_pieces() -> RawImages:
    return symbol_dataset(CHESS, per_class=60, seed=41,
                          differs="chess pieces (U+2654-265F): classes no other pictogram set has")


@builtin("card-suits", domain="pictograms", seed=42,
         description="8 playing-card suits, black and white, in 13 DejaVu/STIX fonts, 32x32; "
                     "compact filled/outline shapes where the chess set has tall figures")
def card_suits() -> RawImages:
    return symbol_dataset(SUITS, per_class=78, seed=42,
                          differs="card suits (U+2660-2667), drawn by 13 fonts where the other pictograms have 6-7")


@builtin("dice-faces", domain="pictograms", seed=43,
         description="the 6 die faces in 7 DejaVu/STIX fonts, 32x32; classes differ only by the count "
                     "and layout of pips")
def dice_faces() -> RawImages:
    return symbol_dataset(DICE, per_class=100, seed=43,
                          differs="die faces (U+2680-2685): a counting task, the other pictograms are shape tasks")


@builtin("zodiac-signs", domain="pictograms", seed=44,
         description="the 12 zodiac signs in 6 DejaVu fonts, 32x32; thin line symbols, not filled figures")
def zodiac_signs() -> RawImages:
    return symbol_dataset(ZODIAC, per_class=60, seed=44,
                          differs="zodiac signs (U+2648-2653): abstract line symbols, no other set's classes")


@builtin("weather-symbols", domain="pictograms", seed=45,
         description="10 weather symbols (sun, cloud, snowflake, lightning...) in 6 DejaVu fonts, 32x32; "
                     "detailed pictures, classes no other pictogram set has")
def weather_symbols() -> RawImages:
    return symbol_dataset(WEATHER, per_class=60, seed=45,
                          differs="weather symbols from U+2600-2608, U+2614, U+2744, U+26A1: "
                                  "detailed pictures, no other set's classes")
