"""Mathematical symbols (operators, relations and set/logic signs, arrows) rendered from the
DejaVu and STIX fonts matplotlib ships, with the jitter of the printed glyphs.

Symbols that differ only in size (a centred dot and a bullet, a tilde and a small tilde) are left
out: every glyph is scaled to fill the frame, so they would give identical classes.
"""

from __future__ import annotations

from raynas.data.builtin import RawImages, builtin
from raynas.data.builtin.pictograms import symbol_dataset

OPERATORS = [("plus", "+"), ("minus", "−"), ("times", "×"), ("divide", "÷"), ("plus-minus", "±"),
             ("minus-plus", "∓"), ("sum", "∑"), ("product", "∏"), ("square root", "√"), ("integral", "∫"),
             ("partial", "∂"), ("nabla", "∇"), ("infinity", "∞"), ("circled plus", "⊕"), ("circled times", "⊗"),
             ("circled dot", "⊙")]
RELATIONS = [("equal", "="), ("not equal", "≠"), ("less", "<"), ("greater", ">"), ("less or equal", "≤"),
             ("greater or equal", "≥"), ("approx", "≈"), ("identical", "≡"), ("proportional", "∝"),
             ("subset", "⊂"), ("superset", "⊃"), ("subset or equal", "⊆"), ("superset or equal", "⊇"),
             ("element of", "∈"), ("not element of", "∉"), ("union", "∪"), ("intersection", "∩"), ("and", "∧"),
             ("or", "∨"), ("not", "¬"), ("for all", "∀"), ("exists", "∃"), ("perpendicular", "⊥")]
ARROWS = [("left", "←"), ("up", "↑"), ("right", "→"), ("down", "↓"), ("left-right", "↔"), ("up-down", "↕"),
          ("north-west", "↖"), ("north-east", "↗"), ("south-east", "↘"), ("south-west", "↙"),
          ("double left", "⇐"), ("double up", "⇑"), ("double right", "⇒"), ("double down", "⇓"),
          ("double left-right", "⇔"), ("hook left", "↩"), ("hook right", "↪"), ("anticlockwise", "↺"),
          ("clockwise", "↻")]


@builtin("math-operators", domain="math symbols", seed=51,
         description="16 arithmetic and calculus operators (+, −, ×, ∑, ∫, ∇, ⊕...) in 14 DejaVu/STIX fonts, 32x32; "
                     "no relation or arrow among them")
def math_operators() -> RawImages:
    return symbol_dataset(OPERATORS, per_class=70, seed=51,
                          differs="arithmetic and calculus operators; the relation and arrow sets share no class")


@builtin("math-relations", domain="math symbols", seed=52,
         description="23 relation, set and logic symbols (=, ≤, ⊂, ∈, ∪, ∀...) in 14 DejaVu/STIX fonts, 32x32; "
                     "many classes are mirror or upside-down pairs")
def math_relations() -> RawImages:
    return symbol_dataset(RELATIONS, per_class=56, seed=52,
                          differs="relations, set and logic signs; classes pair up as mirror images (< >, ⊂ ⊃), "
                                  "unlike the operators")


@builtin("math-arrows", domain="math symbols", seed=53,
         description="19 arrows (single, double, hooked, circular) in 14 DejaVu/STIX fonts, 32x32; "
                     "the direction is the class")
def math_arrows() -> RawImages:
    return symbol_dataset(ARROWS, per_class=56, seed=53,
                          differs="arrows: most classes are rotations of one another, a task the operators "
                                  "and relations do not pose")
