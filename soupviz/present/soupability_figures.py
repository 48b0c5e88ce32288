"""The soupability lesson as a figure: straight paths side by side, accuracy above and loss below,
each with the chord joining its ends, so a smooth path between two soup ingredients stands next
to one that collapses in the middle (an ingredient and an independently trained network).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from soupviz.errors import SoupvizError
from soupviz.evaluate.soupability import PairBarrier
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows

CHORD = {"color": "grey", "dash": "dash", "width": 1.5}


def chord(values: Sequence[float], alphas: Sequence[float]) -> list[float]:
    """The line joining a path's end values, at each alpha (what `path_barrier` measures against)."""
    return [values[0] + a * (values[-1] - values[0]) for a in alphas]


def path_title(path: PairBarrier) -> str:
    """'linf → l2 (shared base: linf)<br>soups well: acc −0.3 pts, loss +0.00' for a subplot."""
    base = f"shared base: {path.base}" if path.base else "no shared base"
    return (f"{path.a} → {path.b} ({base})<br>{path.verdict}: acc −{100 * path.accuracy_barrier:.1f} pts, "
            f"loss +{path.loss_barrier:.2f}")


def paths_figure(paths: Sequence[PairBarrier], images: int, family: str = "", paper: bool = False) -> go.Figure:
    """Accuracy (%) and loss (nats) along straight paths, one column per path, chords dashed.

    Args:
        paths: e.g. a pair of the family's ingredients and an ingredient with an outside
            network (`Soupability.pair`); alpha 0 is `a`, alpha 1 is `b`.
        images: how many test images the paths were measured on (in the axis title and rows).
        family: the family's name, for the file name.
    """
    if not paths:
        raise SoupvizError("No straight paths to draw: measure a pair first.")
    fig = make_subplots(rows=2, cols=len(paths), shared_yaxes=True, vertical_spacing=0.1,
                        horizontal_spacing=0.06, subplot_titles=[path_title(p) for p in paths])
    rows = []
    for col, path in enumerate(paths, start=1):
        colour = OKABE_ITO[(col - 1) % len(OKABE_ITO)]
        accuracy = [100 * a for a in path.accuracies]
        for row, values, name in ((1, accuracy, "accuracy (%)"), (2, path.losses, "loss (nats)")):
            fig.add_trace(go.Scatter(x=path.alphas, y=chord(values, path.alphas), mode="lines", line=CHORD,
                                     name="line joining the ends", legendgroup="chord",
                                     showlegend=col == 1 and row == 1, hoverinfo="skip"), row=row, col=col)
            fig.add_trace(go.Scatter(
                x=path.alphas, y=values, mode="lines+markers", line={"color": colour},
                name=f"{path.a} → {path.b}", legendgroup=f"{path.a}-{path.b}", showlegend=row == 1,
                hovertemplate=f"α = %{{x:.3g}} (weight on {path.b})<br>{name} %{{y:.3g}}<extra></extra>",
            ), row=row, col=col)
        fig.update_xaxes(title_text=f"α: weight on {path.b}", row=2, col=col)
        chords = zip(chord(path.accuracies, path.alphas), chord(path.losses, path.alphas), strict=True)
        for alpha, acc, loss, (acc_line, loss_line) in zip(path.alphas, path.accuracies, path.losses, chords,
                                                           strict=True):
            rows.append({"a": path.a, "b": path.b, "shared_base": path.base or "", "alpha": alpha, "accuracy": acc,
                         "loss": loss, "chord_accuracy": acc_line, "chord_loss": loss_line,
                         "accuracy_barrier": path.accuracy_barrier, "loss_barrier": path.loss_barrier,
                         "verdict": path.verdict, "images": images})
    fig.update_yaxes(title_text=f"Clean accuracy (%)<br>on {images} test images", row=1, col=1)
    fig.update_yaxes(title_text="Cross-entropy (nats)", row=2, col=1)
    fig.update_layout(title={"text": "Straight paths in weight space: soup ingredients and an unrelated network"},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0, "xanchor": "left"},
                      height=620, margin={"t": 110})
    fig.update_annotations(font_size=12)
    attach_rows(fig, "paths", rows, family, " ".join(f"{p.a} to {p.b}" for p in paths))
    return apply_style(fig, paper)
