"""The evaluation sections of a model in the run's report (:mod:`tfx_pipeline.report`): metrics per head and slice,
the reliability diagram, AUC by position, the comparison with the last blessed model and the validation's verdict;
a retrieval model's metrics and comparison.

Each function takes the report's ``run`` (:class:`tfx_pipeline.report.Run`: the config, the metadata store, the
feature spec and each model's evaluation, read once) and a model name, and returns the section's HTML.

Choice: a ranking AUC (``auc``, ``gauc``, ``csauc``) of a slice whose label is all 0 or all 1 is shown as undefined
(a dash): TFMA writes 0 there, which would read as the worst ranking possible. A head's table leaves out the slices
of its own label (the CTR head in the slice click=1: one class only), which exist for another head's condition.
"""

import json
import os
import re
from typing import Dict, List

from feature_spec import spec as spec_lib
from tfx_pipeline import evaluation
from tfx_pipeline import report_figures as figures
from tfx_pipeline import report_html as h
from tfx_pipeline import retrieval_evaluation

# The columns of a head's metrics table, in this order; any other metric follows by name.
METRIC_ORDER = ('example_count', 'auc', 'gauc', 'logloss', 'calibration', 'mean_prediction', 'mean_label', 'csauc',
                'coec')
RANKING_AUCS = ('auc', 'gauc', 'csauc')   # undefined in a slice of one class of the head's label
NO_NEW_ITEMS = ('No "new items" slice: the data has no is-new column for TFMA to slice the test examples by (a new '
                "item is one outside Transform's vocabulary; see tfx_pipeline/evaluation.py).")
SAME_DATA = ('example_count', 'mean_label')   # the test set's, equal for both models: not compared
FIRST_MODEL = 'First model of this run: no blessed baseline to compare with.'


def head_metrics(metrics: Dict[str, float], head, heads) -> Dict[str, float]:
    """One head's metrics of a slice of :func:`~tfx_pipeline.evaluation.slice_metrics`, without the head's prefix
    and without the ``_diff`` ones: a single-head model's plain names; a named head's ``<head>_…`` names (a name
    that starts with a longer head's prefix belongs to that head). A ranking AUC is None where the head's label
    has one class only (the module docstring)."""
    if not head.name:
        own = {k: v for k, v in metrics.items() if not k.endswith('_diff')}
    else:
        prefixes = sorted((f'{other.name}_' for other in heads if other.name), key=len, reverse=True)
        own = {}
        for name, value in metrics.items():
            prefix = next((p for p in prefixes if name.startswith(p)), None)
            if prefix == f'{head.name}_' and not name.endswith('_diff'):
                own[name[len(prefix):]] = value
    if own.get('mean_label') in (0.0, 1.0):
        own.update({name: None for name in RANKING_AUCS if name in own})
    return own


def ordered(names) -> List[str]:
    """Metric names in :data:`METRIC_ORDER`, then the others by name."""
    return sorted(names, key=lambda n: (METRIC_ORDER.index(n) if n in METRIC_ORDER else len(METRIC_ORDER), n))


def slice_tables(run, model: str) -> str:
    """A table per head: a row per slice, a column per metric."""
    heads, slices = run.heads(model), run.slices(model)
    parts = []
    for head in heads:
        label = run.spec.label_for(head.role)
        rows = [(name, head_metrics(metrics, head, heads)) for name, metrics in slices.items()
                if not name.startswith(f'{label}=')]
        rows = [(name, values) for name, values in rows if values]
        names = ordered(set().union(*(values for _, values in rows)))
        title = f'head {head.name}' if head.name else 'the model\'s one head'
        condition = f'; also in the slice {run.spec.label_for(head.condition)}=1' if head.condition else ''
        parts.append(f'<h4>{h.esc(title)} (label {h.esc(label)}{h.esc(condition)})</h4>')
        parts.append(h.table(['slice', *names], ([name, *(values.get(n) for n in names)] for name, values in rows),
                             css=f'slice-metrics head-{head.name or "single"}'))
    return ''.join(parts) + (f'<p class="note">—: undefined (one class of the label in the slice) or not computed. '
                             f'{h.esc(NO_NEW_ITEMS)}</p>')


def reliability(run, model: str) -> str:
    """The primary head's reliability diagram and, folded, its bins."""
    head = run.heads(model)[0]
    bins = figures.merge_buckets(evaluation.calibration_buckets(run.evaluation_uri(model), head.name))
    label = run.spec.label_for(head.role)
    name = f'{model} {head.name}'.strip()
    img = figures.img_tag(figures.reliability_diagram(bins, f'{name}: {label} rate against prediction (test)'),
                          f'reliability diagram of {name}')
    total = sum(b.count for b in bins)
    caption = (f'Observed {label} rate against mean prediction, in {len(bins)} bins of about equal count of the '
               f'{total:,.0f} test examples (TFMA\'s calibration plot, {evaluation.CALIBRATION_BUCKETS} buckets, '
               'merged); the dashed diagonal is perfect calibration; below, the examples per bin.')
    details = h.table(['bin', 'mean prediction', 'observed rate', 'examples'],
                      ([i + 1, b.predicted, b.observed, b.count] for i, b in enumerate(bins)))
    return h.figure(img, caption) + f'<details><summary>the bins</summary>{details}</details>'


def auc_by_position(run, model: str) -> str:
    """The primary head's AUC in each position slice (the last blessed model's too when there is one)."""
    positions = run.spec.of_kind(spec_lib.POSITION)
    if not positions:
        return '<p class="note">The feature spec has no position column.</p>'
    prefix = f'{positions[0].source}='
    heads, slices = run.heads(model), run.slices(model)
    rows = sorted(((name[len(prefix):], head_metrics(metrics, heads[0], heads)) for name, metrics in slices.items()
                   if name.startswith(prefix) and ', ' not in name), key=lambda row: _numeric(row[0]))
    if not rows:
        return '<p class="note">The evaluation has no position slice.</p>'
    baseline = None
    if run.baseline(model):
        base = run.slices(model, baseline=True)
        baseline = [head_metrics(base.get(prefix + p, {}), heads[0], heads).get(evaluation.AUC_NAME) for p, _ in rows]
        baseline = [float('nan') if b is None else b for b in baseline]
    aucs = [m.get(evaluation.AUC_NAME) for _, m in rows]
    counts = [m.get('example_count', 0.0) for _, m in rows]
    overall = head_metrics(slices[evaluation.OVERALL], heads[0], heads).get(evaluation.AUC_NAME)
    name = f'{model} {heads[0].name}'.strip()
    img = figures.img_tag(figures.auc_by_position([p for p, _ in rows], aucs, counts, overall,
                                                  f'{name}: AUC by {positions[0].source} (test)', baseline),
                          f'AUC by position of {name}')
    return h.figure(img, f'The primary head\'s AUC in each {positions[0].source} slice, its example count above the '
                         'bar' + ('; diamonds: the last blessed model.' if baseline else '.'))


def _numeric(value: str):
    try:
        return (0, float(value), '')
    except ValueError:
        return (1, 0.0, value)


def comparison(run, model: str) -> str:
    """The blessing, the validation's failing thresholds, and the overall metrics against the baseline's."""
    parts = [blessing(run, model), validation(run.evaluation_uri(model))]
    if not run.baseline(model):
        return ''.join(parts) + f'<p>{h.esc(FIRST_MODEL)}</p>'
    candidate, base = run.slices(model)[evaluation.OVERALL], run.slices(model, baseline=True)[evaluation.OVERALL]
    heads = run.heads(model)
    named = tuple(f'{head.name}_' for head in heads if head.name)
    compared = [n[:-len('_diff')] for n in candidate if n.endswith('_diff') and n[:-len('_diff')] in candidate
                and not n[:-len('_diff')].endswith(SAME_DATA)]
    names = ordered(n for n in compared if not n.startswith(named)) + sorted(   # the primary head's plain names
        n for n in compared if n.startswith(named[1:]))                         # then the other heads'
    rows = ([n, candidate[n], base.get(n), h.Difference(candidate[f'{n}_diff'])] for n in names)
    return ''.join(parts) + h.table(['metric (overall)', 'this model', 'last blessed', 'difference'], rows,
                                    css='comparison')


def blessing(run, model: str) -> str:
    artifact = run.artifact('ModelBlessing', run.config.node_id('Evaluator', model))
    if artifact is None:
        return '<p>blessing: <span class="note">none recorded</span></p>'
    properties = artifact.custom_properties
    blessed = bool(properties['blessed'].int_value) if 'blessed' in properties else None
    baseline = properties['baseline_model'].string_value if 'baseline_model' in properties else None
    return (f'<p>blessing: {h.state(blessed, "blessed", "NOT blessed", "unknown")}'
            + (f'; baseline <code>{h.esc(baseline)}</code>' if baseline else '') + '</p>')


def validation(uri: str) -> str:
    """The TFMA validation's verdict and its failing thresholds."""
    import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    from tensorflow_model_analysis.slicer import slicer_lib  # pylint: disable=g-import-not-at-top
    result = tfma.load_validation_result(uri)
    if result.validation_ok:
        return '<p>validation: <span class="ok">every threshold passed</span></p>'
    failures = []
    for per_slice in result.metric_validations_per_slice:
        label = evaluation.slice_label(slicer_lib.deserialize_slice_key(per_slice.slice_key))
        for failure in per_slice.failures:
            key = failure.metric_key
            what = f'{key.output_name + " " if key.output_name else ""}{key.name}{" change" if key.is_diff else ""}'
            threshold = text_format.MessageToString(failure.metric_threshold, as_one_line=True)
            failures.append([label, what, failure.metric_value.double_value, threshold])
    return ('<p>validation: <span class="bad">failed</span></p>'
            + h.table(['slice', 'failing metric', 'value', 'threshold'], failures, css='failures'))


def retrieval_slices(metrics: Dict[str, object]):
    """A retrieval Evaluator's metrics (:func:`tfx_pipeline.retrieval_evaluation.read_metrics`) as ``({slice: {metric:
    value}}, {other metric: value})``: ``all`` and each slice that has a row count (``new_items_rows``, …), the
    slice's metrics named without its prefix (``recall_at_50``)."""
    groups = sorted((k[:-len('_rows')] for k in metrics if k.endswith('_rows') and k != 'rows'), key=len, reverse=True)
    slices, used = {'all': {}}, set()
    for name, value in metrics.items():
        group = next((g for g in groups if name.startswith(f'{g}_')), None)
        if group is not None:
            slices.setdefault(group, {})[name[len(group) + 1:]] = value
            used.add(name)
        elif name == 'rows' or name == 'mrr' or re.fullmatch(r'(recall|ndcg)_at_\d+', name):
            slices['all'][name] = value
            used.add(name)
    return slices, {k: v for k, v in metrics.items() if k not in used}


def _retrieval_order(name: str):
    match = re.fullmatch(r'(.*)_at_(\d+)', name)
    return (name != 'rows', match.group(1) if match else name, int(match.group(2)) if match else 0)


def retrieval(run, model: str) -> str:
    """A retrieval model's full-ranking metrics by slice, its blessing, the reasons it was not blessed, and the
    baseline's metrics when there was one."""
    with open(os.path.join(run.evaluation_uri(model), retrieval_evaluation.METRICS_FILE)) as f:
        result = json.load(f)
    metrics, baseline = result['model'], result.get('baseline')
    slices, others = retrieval_slices(metrics)
    names = sorted(set().union(*slices.values()), key=_retrieval_order)
    parts = [h.table(['slice', *names], ([label, *(values.get(n) for n in names)] for label, values in slices.items()),
                     css='retrieval-slices'), h.key_values(sorted(others.items())), blessing(run, model)]
    reasons = result.get('not_blessed_because') or []
    if reasons:
        parts.append('<ul>' + ''.join(f'<li class="bad">{h.esc(r)}</li>' for r in reasons) + '</ul>')
    if baseline is None:
        return ''.join(parts) + f'<p>{h.esc(FIRST_MODEL)}</p>'
    rows = ([n, v, baseline.get(n), h.Difference(v - baseline[n])] for n, v in sorted(metrics.items())
            if isinstance(v, (int, float)) and isinstance(baseline.get(n), (int, float)) and not n.endswith('rows'))
    return ''.join(parts) + h.table(['metric', 'this model', 'last blessed', 'difference'], rows, css='comparison')
