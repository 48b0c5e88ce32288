"""Figures of the insight pages: grids of small images drawn pixel for pixel (saliency maps,
generation strips, generated classes) and few-shot adaptation's held-out accuracies, soup
compositions and k curves. Each keeps the rows it shows (`export.attach_rows`), so its CSV and
file name say what it shows.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from soupviz.insight.adapt import Outcome
from soupviz.insight.generate import Generation
from soupviz.insight.saliency import SaliencyResult
from soupviz.present.figure_export import OKABE_ITO, apply_style, attach_rows
from soupviz.present.labels import soup_label
from soupviz.present.soup_figures import BOTTOM_LEGEND

SIDE = 32  # data units per image side, whatever the image's pixels
GAP, CAPTION = 3, 13  # data units between images and under each for its caption
SCALE = 3  # CSS pixels per data unit: a 32-pixel image is drawn 96 px wide, nearest neighbour
MAX_WIDTH = 980  # CSS px: the main column of the wide layout on a 1400 px screen
RIGHT, WRONG = "#009E73", "#D55E00"


@dataclass(frozen=True)
class Cell:
    """One image of a grid: (3, H, W) or (H, W) floats in [0, 1], with a caption under it."""

    image: torch.Tensor
    caption: str = ""
    colour: str = "black"


def png_uri(image: torch.Tensor) -> str:
    """A data URI of the image as PNG (grey for (H, W)), pixels rounded to 8 bits."""
    array = image.detach().float().cpu().clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    array = np.repeat(array[None], 3, 0) if array.ndim == 2 else array
    buffer = io.BytesIO()
    Image.fromarray(array.transpose(1, 2, 0)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_grid(cells: Sequence[Sequence[Cell | None]], row_titles: Sequence[str], column_titles: Sequence[str],
               title: str = "", paper: bool = False, max_width: int = MAX_WIDTH) -> go.Figure:
    """Images on one hidden pair of axes, up to `SCALE` CSS px per data unit (less where the grid
    would be wider than `max_width` px), so each image pixel is a block of screen pixels (Plotly
    draws `source` images without smoothing); captions under them."""
    rows, columns = len(cells), max(len(row) for row in cells)
    pitch_x, pitch_y = SIDE + GAP, SIDE + CAPTION + GAP
    size = 13 if paper else 11
    fig = go.Figure()
    for r, row in enumerate(cells):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            step = SIDE / cell.image.shape[-1]
            fig.add_trace(go.Image(source=png_uri(cell.image), x0=c * pitch_x + step / 2, y0=r * pitch_y + step / 2,
                                   dx=step, dy=step, hoverinfo="skip"))
            if cell.caption:
                fig.add_annotation(x=c * pitch_x + SIDE / 2, y=r * pitch_y + SIDE + 1, text=cell.caption,
                                   showarrow=False, yanchor="top", font={"size": size, "color": cell.colour})
    for c, text in enumerate(column_titles):
        fig.add_annotation(x=c * pitch_x + SIDE / 2, y=1, yref="paper", yshift=4, text=text, showarrow=False,
                           yanchor="bottom", font={"size": size + 1})
    for r, text in enumerate(row_titles):
        fig.add_annotation(x=0, xref="paper", xanchor="right", xshift=-6, y=r * pitch_y + SIDE / 2, text=text,
                           showarrow=False, font={"size": size + 1})
    left = 12 + (8 if paper else 7) * max((len(t) for t in row_titles), default=0)
    top = 44 + (30 if title else 0)
    width, height = columns * pitch_x - GAP, rows * pitch_y
    fig.update_xaxes(visible=False, range=[0, width], fixedrange=True)
    fig.update_yaxes(visible=False, range=[height, 0], fixedrange=True, scaleanchor="x")
    scale = min(SCALE, (max_width - left - 10) / width)
    fig.update_layout(title=title or None, width=round(left + 10 + width * scale),
                      height=round(top + 10 + height * scale),
                      margin={"l": left, "r": 10, "t": top, "b": 10}, showlegend=False)
    apply_style(fig, paper)
    fig.update_xaxes(visible=False, showline=False)
    fig.update_yaxes(visible=False, showline=False)
    return fig


def _verdict(prediction: int, truth: int, probability: float, classes: Sequence[str]) -> tuple[str, str]:
    mark = "✓" if prediction == truth else "✗"
    return f"{classes[prediction]} {100 * probability:.0f}% {mark}", RIGHT if prediction == truth else WRONG


def saliency_figure(
    images: torch.Tensor, labels: Sequence[int], panels: Sequence[Mapping[str, SaliencyResult]],
    keys: Sequence[str], titles: Sequence[str], classes: Sequence[str], method: str = "", family: str = "",
    weights: Sequence[float] | None = None, names: Sequence[str] | None = None, paper: bool = False,
) -> go.Figure:
    """One row per image (titled `names`): the image, then its map under each model of `keys` (titled `titles`),
    with the model's prediction and confidence under each map (green right, orange wrong);
    `method` (e.g. 'smoothgrad') goes into the file name."""
    cells, rows = [], []
    for i, (image, label, panel) in enumerate(zip(images, labels, panels, strict=True)):
        line = [Cell(image, f"true: {classes[label]}")]
        name = names[i] if names else f"image {i + 1}"
        for key, title in zip(keys, titles, strict=True):
            result = panel[key]
            line.append(Cell(result.display, *_verdict(result.prediction, label, result.confidence, classes)))
            rows.append({"image": name, "true_class": classes[label], "model": title,
                         "prediction": classes[result.prediction], "confidence": result.confidence,
                         "true_class_probability": result.true_probability, "method": result.method,
                         "normalisation": result.normalisation})
        cells.append(line)
    row_titles = list(names) if names else [f"image {i + 1}" for i in range(len(cells))]
    fig = image_grid(cells, row_titles, ["input", *titles], paper=paper)
    return attach_rows(fig, "saliency", rows, family, method, weights)


def strip_figure(runs: Sequence[Generation], titles: Sequence[str], classes: Sequence[str], family: str = "",
                 weights: Sequence[float] | None = None, paper: bool = False) -> go.Figure:
    """One row per model: the image after each kept step of a walk towards the target, with the
    target's probability under it (the final image also gets the model's prediction)."""
    target = classes[int(runs[0].target[0])]
    cells, rows = [], []
    for run, title in zip(runs, titles, strict=True):
        line = []
        for f, step in enumerate(run.frame_steps):
            p = float(run.target_probability[step, 0])
            caption = f"p = {100 * p:.0f}%"
            if f == len(run.frame_steps) - 1:
                caption += f"<br>→ {classes[int(run.prediction[0])]}"
            line.append(Cell(run.frames[f, 0], caption, RIGHT if p >= 0.5 else "black"))
            rows.append({"model": title, "step": step, "target": target, "target_probability": p,
                         "settings": run.label})
        cells.append(line)
    columns = [f"step {s}" for s in runs[0].frame_steps]
    fig = image_grid(cells, titles, columns, title=f"Towards {target!r}: probability of {target!r} under each image",
                     paper=paper)
    return attach_rows(fig, "generation-strip", rows, family, f"towards {target}", weights)


def class_figure(runs: Sequence[Generation], titles: Sequence[str], classes: Sequence[str], family: str = "",
                 weights: Sequence[float] | None = None, paper: bool = False) -> go.Figure:
    """The Gaussian seeds on top, then one row per model of the images it generated, one column
    per target, with the model's prediction and the target's probability under each."""
    targets = [int(t) for t in runs[0].target]
    cells = [[Cell(seed_image) for seed_image in runs[0].start]]
    rows = []
    for run, title in zip(runs, titles, strict=True):
        line = []
        for j, target in enumerate(targets):
            p = float(run.target_probability[-1, j])
            prediction = int(run.prediction[j])
            mark = "✓" if prediction == target else "✗"
            line.append(Cell(run.final[j], f"p = {100 * p:.0f}%<br>{classes[prediction]} {mark}",
                             RIGHT if prediction == target else WRONG))
            rows.append({"model": title, "target": classes[target], "prediction": classes[prediction],
                         "target_probability": p, "settings": run.label})
        cells.append(line)
    fig = image_grid(cells, ["Gaussian seed", *titles], [classes[t] for t in targets], paper=paper)
    return attach_rows(fig, "generated-classes", rows, family, "targeted generation", weights)


def outcomes_figure(outcomes: Sequence[Outcome], labels: Sequence[str], family: str = "", by_shift: bool = False,
                    paper: bool = False) -> go.Figure:
    """Held-out accuracy (%) of each candidate with its 95% Wilson interval; one colour per
    shift when `by_shift` (several shifts), else one per role (selected soups stand out)."""
    fig = go.Figure()
    groups = list(dict.fromkeys(o.shift if by_shift else o.role for o in outcomes))
    for g, group in enumerate(groups):
        chosen = [o for o in outcomes if (o.shift if by_shift else o.role) == group]
        fig.add_trace(go.Scatter(
            x=[100 * o.accuracy for o in chosen], y=[o.candidate for o in chosen], mode="markers", name=group,
            orientation="h",
            marker={"size": 11 if group == "selected" else 9, "color": OKABE_ITO[g % len(OKABE_ITO)]},
            error_x={"type": "data", "symmetric": False, "array": [100 * (o.ci_high - o.accuracy) for o in chosen],
                     "arrayminus": [100 * (o.accuracy - o.ci_low) for o in chosen]},
            hovertext=[f"{soup_label(o.weights, labels)}<br>{o.method}<br>{o.correct}/{o.n} held-out images"
                       for o in chosen], hoverinfo="text+x",
        ))
    shifts = ", ".join(dict.fromkeys(o.shift for o in outcomes))
    fig.update_layout(xaxis_title="Held-out accuracy (%), 95% interval", yaxis={"autorange": "reversed"},
                      scattermode="group" if by_shift else "overlay",
                      title=f"Few-shot selection on {shifts}, k = {outcomes[0].k} per class<br><sup>"
                            f"{held_out(outcomes)} held-out images per model</sup>",
                      legend={"x": 1.02, "y": 1, "xanchor": "left", "yanchor": "top"},  # clear of the axis title
                      height=160 + 28 * len(dict.fromkeys(o.candidate for o in outcomes)), width=760)
    apply_style(fig, paper)
    return attach_rows(fig, "adaptation", [o.row() for o in outcomes], family, shifts)


def held_out(outcomes: Sequence) -> str:
    """The held-out image count of `outcomes` ('1000', or '500 to 1000' where they differ)."""
    counts = sorted({o.n for o in outcomes})
    return f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"


def composition_figure(named: Sequence[tuple[str, Sequence[float]]], labels: Sequence[str], family: str = "",
                       paper: bool = False) -> go.Figure:
    """Each chosen soup's weight on each ingredient, as stacked bars (negative weights below 0)."""
    fig = go.Figure()
    for i, label in enumerate(labels):
        fig.add_trace(go.Bar(y=[name for name, _ in named], x=[float(w[i]) for _, w in named], name=label,
                             orientation="h", marker_color=OKABE_ITO[i % len(OKABE_ITO)],
                             text=[f"{float(w[i]):.2f}" if abs(float(w[i])) > 0.04 else "" for _, w in named]))
    fig.update_layout(barmode="relative", yaxis={"autorange": "reversed"}, legend=BOTTOM_LEGEND, width=760,
                      title="Weight of each ingredient in the chosen soups", height=170 + 36 * len(named))
    apply_style(fig, paper)
    rows = [{"soup": name, **{label: float(w[i]) for i, label in enumerate(labels)}} for name, w in named]
    return attach_rows(fig, "composition", rows, family, "weights")


DODGE = 1.06  # candidates side by side around each k on the log axis: a factor of 6% apart


def k_curve_figure(points: Sequence[dict], summary: Sequence[dict], shift: str, family: str = "",
                   paper: bool = False) -> go.Figure:
    """Held-out accuracy (%) against k images per class: mean over the selection draws with a
    bar from the worst to the best draw, per candidate. Candidates sit side by side around each k
    (a small shift on the log axis), so their ranges stay apart where filled bands would overlap."""
    fig = go.Figure()
    candidates = list(dict.fromkeys(s["candidate"] for s in summary))
    for c, candidate in enumerate(candidates):
        rows = sorted((s for s in summary if s["candidate"] == candidate), key=lambda s: s["k"])
        colour = OKABE_ITO[c % len(OKABE_ITO)]
        shift_by = DODGE ** (c - (len(candidates) - 1) / 2)
        means = [100 * s["mean"] for s in rows]
        fig.add_trace(go.Scatter(
            x=[s["k"] * shift_by for s in rows], y=means, mode="lines+markers", name=candidate,
            line={"color": colour}, hovertext=[f"k = {s['k']}: {s['repeats']} draws, sd {100 * s['std']:.1f}"
                                               for s in rows],
            error_y={"type": "data", "symmetric": False, "color": colour, "thickness": 1.5, "width": 3,
                     "array": [100 * s["max"] - m for s, m in zip(rows, means, strict=True)],
                     "arrayminus": [m - 100 * s["min"] for s, m in zip(rows, means, strict=True)]},
        ))
    fig.update_xaxes(type="log", tickvals=sorted({s["k"] for s in summary}), title="labelled images per class (k)")
    fig.update_layout(yaxis_title="Held-out accuracy (%)",
                      title=f"How the choice improves with k on {shift}<br><sup>mean over draws; bars from the "
                            "worst to the best draw</sup>",
                      legend=BOTTOM_LEGEND, width=760, height=460)
    apply_style(fig, paper)
    return attach_rows(fig, "k-curve", list(points), family, shift)
