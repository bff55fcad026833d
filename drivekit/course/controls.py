"""What the course's widgets share: weights as shares plus a scale (:class:`WeightControls`), the sentence on
why only the ratios of the weights rank answers (:data:`RATIOS_NOTE`), and the outputs a reader without a widget
front end sees: tables with whole texts (:func:`whole`) and a widget's view bundled with a static version of its
state (:func:`bundle`)."""
from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping

import pandas as pd

STYLE = {"description_width": "110px"}
TERM_LABELS = {"r1": "R1", "r2": "R2", "r3": "R3"}
RATIOS_NOTE = (
    "Only the <b>ratios</b> of the weights decide a ranking: multiplying every weight by the same number "
    "multiplies every answer's R by it and keeps their order. So each slider sets its term's <b>share</b>, "
    "and the <b>scale</b> sets the weights' sum: w = scale × share / Σ shares. The scale changes R's values, "
    "never a ranking. In A2C it multiplies every reward, return and advantage, and so the policy gradient: "
    "it acts like a multiplier of the learning rate (exactly so for plain SGD; drivekit trains with AdamW, "
    "which divides each step by the gradients' running size, so there the scale mostly sets how hard the "
    "reward pulls against the terms it does not multiply, the KL penalty and the entropy bonus).")
_BASE = "padding:3px 8px;border-bottom:1px solid #ddd;vertical-align:top"
CELL, LEFT_CELL = f"{_BASE};text-align:right", f"{_BASE};text-align:left"  # inline: kept where a page is sanitised
ANSWER_CELL = f"{LEFT_CELL};white-space:pre-wrap;word-break:break-word;min-width:28em;max-width:60em"
CLIP_ROW = "padding:6px 8px 3px;text-align:left;background:#eef3f8;border-bottom:1px solid #bbb"
VARIANTS_NOTE = ("R2 variants: <b>label_f1</b>, the mean F1 of the parsed actions and reasons; <b>bleu</b>, the "
                 "proposal's: 1 when BLEU-4 against the true text is at least 0.5, else 0; <b>bleu_raw</b>, BLEU-4 "
                 "itself.")


def esc(text) -> str:
    return html.escape(str(text))


def wrap(text: str, width: int = 100, indent: str = "      ") -> str:
    """A whole text, wrapped to ``width`` (its own line breaks kept, nothing dropped but spaces at a wrap)."""
    lines = []
    for line in str(text).split("\n"):
        lines += textwrap.wrap(line, width, break_long_words=True, break_on_hyphens=False,
                               initial_indent=indent, subsequent_indent=indent) or [indent]
    return "\n".join(lines)


def whole(frame: pd.DataFrame) -> dict:
    """A DataFrame's HTML and plain-text bundle with every text whole (pandas cuts cells at 50
    characters by default), for ``IPython.display.display(bundle, raw=True)``."""
    with pd.option_context("display.max_colwidth", None, "display.width", 250):
        return {"text/html": frame.to_html(), "text/plain": frame.to_string()}


def show_whole(frame: pd.DataFrame) -> None:
    """Display ``frame`` with its texts whole (:func:`whole`)."""
    from IPython.display import display

    display(whole(frame), raw=True)


def bundle(widget, **fallback) -> dict:
    """``widget``'s view where a widget front end is live, and ``fallback`` (mimetype: data) elsewhere. The view
    is written here, as ipywidgets 8 writes it in ``Widget._repr_mimebundle_`` (ipywidgets 7, Colab's, has no
    such method; both speak version 2 of the widget-view format)."""
    view = {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}
    return {"application/vnd.jupyter.widget-view+json": view, **fallback}


# ---------------------------------------------------------------------------------------------
# Weights as shares plus a scale
# ---------------------------------------------------------------------------------------------
class WeightControls:
    """A share slider per reward term and a scale: ``values()`` is ``{name: scale · share / Σ shares}``.

    The first shares are ``weights`` divided by the largest, the scale their sum, so ``values()`` starts as
    ``weights``. ``formula`` shows the weights the sliders give, as the sum R is.
    """

    def __init__(self, weights: Mapping[str, float], continuous: bool = True):
        import ipywidgets as w

        top, total = max(weights.values(), default=0.0), float(sum(weights.values()))
        if top <= 0:
            raise ValueError(f"at least one weight must be above 0, got {dict(weights)}")
        self.shares = {name: w.FloatSlider(value=value / top, min=0.0, max=1.0, step=0.05, description=f"{name} share",
                                           style=STYLE, continuous_update=continuous)
                       for name, value in weights.items()}
        self.scale = w.FloatSlider(value=total, min=0.0, max=max(2.0, 2 * total), step=0.05,
                                   description="scale (Σw)", style=STYLE, continuous_update=continuous)
        self.formula = w.HTML(self.formula_text())
        for slider in self.sliders:
            slider.observe(lambda _: setattr(self.formula, "value", self.formula_text()), names="value")
        self.box = w.VBox(list(self.sliders))

    @property
    def sliders(self) -> list:
        return [*self.shares.values(), self.scale]

    def values(self) -> dict[str, float]:
        total = sum(s.value for s in self.shares.values())
        if total <= 0:
            return {name: 0.0 for name in self.shares}
        return {name: round(self.scale.value * s.value / total, 9) for name, s in self.shares.items()}

    def formula_text(self) -> str:
        terms = " + ".join(f"{v:.2f}·{TERM_LABELS.get(k, k)}" for k, v in self.values().items())
        return f"R = {terms}"
