"""The figures of the run's report (:mod:`tfx_pipeline.report`): a reliability diagram and AUC by position, drawn with
matplotlib and embedded in the page as base64 PNG ``<img>`` tags.

Choice: matplotlib's object API (``Figure`` + the Agg canvas), never ``pyplot``: no global backend to switch (the
process may be a notebook's or a benchmark's that already chose one), no figure registry to leak, nothing that needs
a display. PNG rather than SVG: a few tens of kB a figure whatever the data, and a browser renders it identically.

Choice: the reliability diagram merges TFMA's fine equal-width buckets (:data:`~tfx_pipeline.evaluation.
CALIBRATION_BUCKETS` over [0, 1]) into bins of about equal example count (:func:`merge_buckets`): click-through rates
are small and skewed, so equal-width bins over [0, 1] would put nearly every example in the first one or two.
"""

import base64
import html
import io
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RELIABILITY_BINS = 10
_DPI = 100
_BLUE, _GREY, _ORANGE = '#1f77b4', '#7f7f7f', '#ff7f0e'


class Bin(NamedTuple):
    """A bin of the reliability diagram: its mean prediction, its observed rate (mean label) and its count."""
    predicted: float
    observed: float
    count: float


def merge_buckets(buckets: Sequence, bins: int = RELIABILITY_BINS) -> List[Bin]:
    """Merges consecutive calibration buckets (anything with ``count``, ``label_sum``, ``prediction_sum``, ordered by
    prediction, e.g. :class:`~tfx_pipeline.evaluation.CalibrationBucket`) into at most ``bins`` bins of about equal
    count; a bucket is never split: one holding more than its share makes a larger bin, and the examples after it
    are shared by the bins left."""
    if bins < 1:
        raise ValueError(f'bins must be >= 1, got {bins}')
    buckets = [b for b in buckets if b.count > 0]
    left = sum(b.count for b in buckets)
    target, merged = left / bins, []
    count = labels = predictions = 0.0
    for index, bucket in enumerate(buckets):
        count, labels = count + bucket.count, labels + bucket.label_sum
        predictions += bucket.prediction_sum
        if count >= target * (1 - 1e-9) or index == len(buckets) - 1:
            merged.append(Bin(predictions / count, labels / count, count))
            left -= count
            target = left / max(bins - len(merged), 1)   # the rest shared by the bins left
            count = labels = predictions = 0.0
    return merged


def reliability_diagram(bins: Sequence[Bin], title: str) -> Figure:
    """Observed rate against mean prediction per bin (±2 binomial standard errors) and the diagonal of perfect
    calibration; below, the example count of each bin."""
    if not bins:
        raise ValueError('reliability_diagram: no bins (no evaluated example)')
    predicted = np.array([b.predicted for b in bins])
    observed = np.array([b.observed for b in bins])
    counts = np.array([b.count for b in bins])
    error = 2.0 * np.sqrt(np.clip(observed * (1.0 - observed), 1e-12, None) / counts)
    top = float(min(1.0, 1.1 * max(predicted.max(), (observed + error).max(), 1e-3)))
    figure = Figure(figsize=(6.0, 5.2), dpi=_DPI, layout='constrained')
    axes, histogram = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    axes.plot([0.0, top], [0.0, top], '--', color=_GREY, label='perfect calibration')
    axes.errorbar(predicted, observed, yerr=error, fmt='o-', color=_BLUE, capsize=3,
                  label='observed rate (±2 s.e.)')
    axes.set(xlim=(0.0, top), ylim=(0.0, top), ylabel='observed rate (mean label)', title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc='upper left', fontsize=8)
    edges = np.r_[0.0, (predicted[1:] + predicted[:-1]) / 2.0, top]
    histogram.bar(predicted, counts, width=0.8 * np.diff(edges).min(), color=_BLUE, alpha=0.6)
    histogram.set(xlabel='mean prediction of the bin', ylabel='examples')
    histogram.grid(alpha=0.3)
    return figure


def auc_by_position(positions: Sequence, aucs: Sequence[float], counts: Sequence[float], overall: Optional[float],
                    title: str, baseline: Optional[Sequence[float]] = None) -> Figure:
    """A bar per position from chance (0.5) to its AUC (the example count above it; NaN: undefined, no bar), the
    overall AUC as a line, and the baseline model's AUC per position as markers when given."""
    if not len(positions) == len(aucs) == len(counts) or not positions:
        raise ValueError(f'auc_by_position: {len(positions)} positions, {len(aucs)} AUCs, {len(counts)} counts')
    x = np.arange(len(positions))
    values = np.array([np.nan if a is None else a for a in aucs], dtype=float)
    figure = Figure(figsize=(7.0, 3.6), dpi=_DPI, layout='constrained')
    axes = figure.subplots()
    axes.axhline(0.5, color=_GREY, linewidth=1, label='chance')
    axes.bar(x, np.nan_to_num(values - 0.5), bottom=0.5, color=_BLUE, alpha=0.8, label='AUC')
    for position, value, n in zip(x, values, counts):
        top = 0.5 if np.isnan(value) else max(value, 0.5)
        axes.annotate(f'n={n:,.0f}' if np.isfinite(value) else f'n={n:,.0f}\nundefined', (position, top),
                      textcoords='offset points', xytext=(0, 3), ha='center', fontsize=7, color=_GREY)
    if overall is not None:
        axes.axhline(overall, color=_ORANGE, linestyle='--', label=f'overall {overall:.4f}')
    if baseline is not None:
        axes.plot(x, baseline, 'D', color='black', markersize=5, label='last blessed model')
    finite = values[np.isfinite(values)]
    low = min(0.45, float(finite.min()) - 0.05 if finite.size else 0.45)
    axes.set(xticks=x, xticklabels=[str(p) for p in positions], xlabel='position', ylabel='AUC', ylim=(low, 1.03),
             title=title)
    axes.grid(axis='y', alpha=0.3)
    axes.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return figure


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def img_tag(figure: Figure, alt: str) -> str:
    """An ``<img>`` holding the figure as a base64 PNG data URL (no file beside the page, nothing to fetch)."""
    data = base64.b64encode(png(figure)).decode('ascii')
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
