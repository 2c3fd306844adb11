"""The run's report (runs/<name>/report.html): its pure parts on hand-made numbers, and the page the session's
pipeline run wrote, read back and opened in a real headless browser."""

import base64
import html.parser
import io
import logging
import os
import pathlib
import re
import urllib.parse

import numpy as np
import pytest
from PIL import Image

import headless_browser
from rec_models.tasks import Head
from tfx_pipeline import config as config_lib
from tfx_pipeline import evaluation
from tfx_pipeline import report
from tfx_pipeline import report_evaluation
from tfx_pipeline import report_figures
from tfx_pipeline import report_html

needs_chromium = pytest.mark.skipif(not os.path.exists(headless_browser.CHROMIUM),
                                    reason=f'no {headless_browser.CHROMIUM} (.ci/run installs Debian\'s chromium)')


class _Page(html.parser.HTMLParser):
    """The tables (class, rows of (text, data-value)), images (alt, src) and links of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tables, self.images, self.links, self.section = [], [], [], None
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'section' and attrs.get('id'):
            self.section = attrs['id']
        elif tag == 'table':
            self.tables.append({'class': attrs.get('class', ''), 'section': self.section, 'rows': []})
        elif tag == 'tr' and self.tables:
            self.tables[-1]['rows'].append([])
        elif tag in ('td', 'th') and self.tables:
            self._cell = ['', attrs.get('data-value')]
        elif tag == 'img':
            self.images.append({**attrs, 'section': self.section})
        elif tag == 'a':
            self.links.append({**attrs, 'section': self.section})

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data

    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self._cell is not None:
            self.tables[-1]['rows'][-1].append(tuple(self._cell))
            self._cell = None

    def table(self, css: str, section: str):
        [found] = [t for t in self.tables if css in t['class'].split() and t['section'] == section]
        header = [text for text, _ in found['rows'][0]]
        return {row[0][0]: dict(zip(header, row)) for row in found['rows'][1:]}


def _decoded(src: str) -> Image.Image:
    assert src.startswith('data:image/png;base64,'), src[:40]
    return Image.open(io.BytesIO(base64.b64decode(src.split(',', 1)[1]))).convert('L')


def _not_blank(image: Image.Image) -> bool:
    return float(np.asarray(image, dtype=float).std()) > 2.0


# --- Pure parts -------------------------------------------------------------------------------------------------


def test_every_string_is_escaped():
    hostile = '<script>alert("x")</script> & \'q\''
    page = report_html.page(hostile, report_html.section(hostile, lambda: report_html.table(
        [hostile, 'auc'], [[hostile, 0.5]]) + report_html.key_values([(hostile, hostile)]) + report_html.figure(
        '<img alt="a" src="data:image/png;base64,AA==">', hostile) + report_html.link('file:///a"b', hostile)))
    assert '<script>' not in page and '"x"' not in page
    # the title, the heading, a header, a cell, a pair's two, the caption, the link
    assert page.count('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27;') == 8
    assert 'href="file:///a&quot;b"' in page
    failed = report_html.section('Metrics', lambda: (_ for _ in ()).throw(ValueError(hostile)))
    assert '<script>' not in failed and '&lt;script&gt;' in failed


def test_a_failing_section_is_shown_not_raised(caplog):
    def unreadable():
        raise FileNotFoundError('/runs/x/pipeline/Evaluator/evaluation/7: no such file')
    with caplog.at_level(logging.ERROR):
        section = report_html.section('Reliability diagram', unreadable)
    assert '<h3>Reliability diagram</h3>' in section
    assert re.search(r'<p class="error">could not read reliability diagram: FileNotFoundError: /runs/x/pipeline/'
                     r'Evaluator/evaluation/7: no such file</p>', section), section
    assert any(r.exc_info and r.exc_info[0] is FileNotFoundError for r in caplog.records)   # the traceback


def test_a_run_without_outputs_still_gets_a_report_saying_what_is_missing(tmp_path):
    config = config_lib.from_dict({'name': 'nothing', 'runs_dir': str(tmp_path), 'data': {'path': str(tmp_path)},
                                   'training': {'model': ['din', 'two_tower']}})
    path = report.write_report(config)
    assert path == os.path.join(config.run_dir, 'report.html')
    text = pathlib.Path(path).read_text()
    assert os.listdir(config.run_dir) == ['report.html']   # the temporary file was renamed, nothing left beside it
    page = _Page(text)
    assert {'model-din', 'model-two_tower', 'anomalies', 'tensorboard'} <= {t for t in re.findall(r'id="([^"]+)"',
                                                                                                    text)}
    assert text.count('could not read') >= 5 and 'no metadata store (did the pipeline run?)' in text
    assert not page.images


def test_a_stopped_run_shows_its_data_sections_only(tmp_path):
    config = config_lib.from_dict({'name': 'stopped', 'runs_dir': str(tmp_path), 'data': {'path': str(tmp_path)}})
    text = report.render(config, stopped='the data does not match the feature spec')
    assert 'The run stopped before training its models: the data does not match the feature spec' in text
    assert 'id="model-din"' not in text and 'id="anomalies"' in text


def test_numbers_are_shown_rounded_and_kept_whole():
    assert report_html.number(1010.0) == '1,010' and report_html.number(0.663623) == '0.6636'
    assert report_html.number(None) == '—' and report_html.number(report_html.Difference(0.0004)) == '+0.0004'
    assert report_html.cell(0.66362345) == '<td data-value="0.66362345">0.6636</td>'


def test_buckets_merge_into_bins_of_about_equal_count():
    rng = np.random.default_rng(0)
    buckets = []
    for i in range(200):   # skewed like a CTR: most predictions near 0
        count = float(rng.poisson(300 * np.exp(-i / 20)) + 1)
        prediction = (i + 0.5) / 1000
        buckets.append(evaluation.CalibrationBucket(i / 1000, (i + 1) / 1000, count, rng.binomial(int(count),
                                                    prediction), prediction * count))
    bins = report_figures.merge_buckets(buckets, 10)
    counts = np.array([b.count for b in bins])
    assert len(bins) == 10 and counts.sum() == sum(b.count for b in buckets)
    assert counts.max() < 1.5 * counts.sum() / 10   # about equal
    assert sum(b.observed * b.count for b in bins) == pytest.approx(sum(b.label_sum for b in buckets))
    assert all(a.predicted < b.predicted for a, b in zip(bins, bins[1:]))
    [one] = report_figures.merge_buckets(buckets, 1)
    assert one.predicted == pytest.approx(sum(b.prediction_sum for b in buckets) / one.count)
    # A bucket with over a share is never split: it makes one bin, the rest share the other bins.
    big = [evaluation.CalibrationBucket(0.0, 0.1, 70.0, 7.0, 3.5)] + [
        evaluation.CalibrationBucket(0.1 + i / 100, 0.11 + i / 100, 3.0, 1.0, 0.3 + i / 100) for i in range(10)]
    assert [b.count for b in report_figures.merge_buckets(big, 4)] == [70.0, 12.0, 9.0, 9.0]
    with pytest.raises(ValueError, match='bins'):
        report_figures.merge_buckets(buckets, 0)


def test_figures_from_hand_made_numbers_are_drawn():
    bins = [report_figures.Bin(p, p * 1.2, 100.0) for p in (0.01, 0.03, 0.05, 0.1, 0.2)]
    reliability = _decoded(re.search(r'src="([^"]+)"', report_figures.img_tag(
        report_figures.reliability_diagram(bins, 'calibration'), 'r')).group(1))
    assert reliability.size == (600, 520) and _not_blank(reliability)
    by_position = report_figures.auc_by_position([0, 1, 2], [0.7, float('nan'), 0.4], [100, 90, 80], 0.66, 'auc',
                                                 baseline=[0.69, 0.5, 0.45])
    image = Image.open(io.BytesIO(report_figures.png(by_position))).convert('L')
    assert image.size == (700, 360) and _not_blank(image)
    with pytest.raises(ValueError, match='3 positions, 2 AUCs'):
        report_figures.auc_by_position([0, 1, 2], [0.7, 0.6], [1, 2, 3], None, 'auc')
    with pytest.raises(ValueError, match='no bins'):
        report_figures.reliability_diagram([], 'calibration')


def test_a_heads_metrics_are_its_own_and_undefined_aucs_are_dashes():
    heads = (Head('ctr', 'click'), Head('ctr_x', 'conversion'), Head('cvr', 'conversion', condition='click'))
    metrics = {'auc': 0.7, 'ctr_auc': 0.7, 'ctr_auc_diff': 0.01, 'ctr_mean_label': 0.1, 'ctr_x_auc': 0.6,
               'cvr_auc': 0.9, 'cvr_mean_label': 0.0, 'cvr_logloss': 0.2}
    assert report_evaluation.head_metrics(metrics, heads[0], heads) == {'auc': 0.7, 'mean_label': 0.1}
    assert report_evaluation.head_metrics(metrics, heads[1], heads) == {'auc': 0.6}
    assert report_evaluation.head_metrics(metrics, heads[2], heads) == {'auc': None, 'mean_label': 0.0,
                                                                          'logloss': 0.2}
    assert report_evaluation.head_metrics({'auc': 0.6, 'auc_diff': 0.0}, Head(), (Head(),)) == {'auc': 0.6}


def test_the_comparison_shows_each_metric_against_the_last_blessed_models(monkeypatch):
    heads = (Head('ctr', 'click'), Head('cvr', 'conversion'))
    candidate = {'auc': 0.70, 'auc_diff': 0.02, 'ctr_auc': 0.70, 'ctr_auc_diff': 0.02, 'logloss': 0.2,
                 'logloss_diff': -0.01, 'example_count': 10.0, 'example_count_diff': 0.0, 'cvr_auc': 0.8,
                 'cvr_auc_diff': -0.05}
    baseline = {'auc': 0.68, 'ctr_auc': 0.68, 'logloss': 0.21, 'example_count': 10.0, 'cvr_auc': 0.85}

    class Run:   # what report.Run gives the sections
        def evaluation_uri(self, model):
            return f'/runs/x/{model}'

        def heads(self, model):
            return heads

        def baseline(self, model):
            return 'baseline'

        def slices(self, model, baseline=False):
            return {'overall': baseline_values if baseline else candidate}

    baseline_values = baseline
    monkeypatch.setattr(report_evaluation, 'blessing', lambda run, model: '<p>blessing</p>')
    monkeypatch.setattr(report_evaluation, 'validation', lambda uri: f'<p>validation of {uri}</p>')
    text = report_evaluation.comparison(Run(), 'esmm')
    rows = _Page(f'<section id="s">{text}</section>').table('comparison', 's')
    assert list(rows) == ['auc', 'logloss', 'cvr_auc']   # the primary's, then the other heads'
    assert rows['auc']['this model'][1] == '0.7' and rows['auc']['last blessed'][1] == '0.68'
    assert rows['cvr_auc']['difference'][0] == '-0.0500' and '<p>validation of /runs/x/esmm</p>' in text
    baseline_values = None
    monkeypatch.setattr(Run, 'baseline', lambda self, model: None)
    assert report_evaluation.FIRST_MODEL in report_evaluation.comparison(Run(), 'esmm')


def test_retrieval_metrics_are_grouped_by_slice():
    slices, others = report_evaluation.retrieval_slices({
        'rows': 81, 'recall_at_10': 0.1, 'recall_at_50': 0.3, 'mrr': 0.05, 'new_items_rows': 6,
        'new_items_recall_at_50': 0.2, 'new_users_rows': 36, 'new_users_recall_at_50': 0.25, 'items_indexed': 2000,
        'sampled_uniform_hr_at_10': 0.18})
    assert slices == {'all': {'rows': 81, 'recall_at_10': 0.1, 'recall_at_50': 0.3, 'mrr': 0.05},
                      'new_items': {'rows': 6, 'recall_at_50': 0.2}, 'new_users': {'rows': 36, 'recall_at_50': 0.25}}
    assert others == {'items_indexed': 2000, 'sampled_uniform_hr_at_10': 0.18}


def test_slice_labels_name_the_columns():
    assert evaluation.slice_label(()) == 'overall'
    assert evaluation.slice_label((('position', 3),)) == 'position=3'
    assert evaluation.slice_label((('device', b'mobile'), ('click', 1))) == 'device=mobile, click=1'


@needs_chromium
def test_the_browser_check_sees_console_errors_and_broken_images(tmp_path):
    page = tmp_path / 'broken.html'
    page.write_text('<!DOCTYPE html><html><body><p>text</p><img alt="gone" src="missing.png">'
                    '<script>console.error("boom")</script></body></html>')
    rendered = headless_browser.render(page.as_uri())
    assert 'boom' in rendered.console_errors
    assert any('missing.png' in e for e in rendered.console_errors), rendered.console_errors
    assert rendered.images == [{'alt': 'gone', 'complete': True, 'width': 0, 'height': 0}]
    assert rendered.text.strip() == 'text' and not headless_browser.blank(rendered.screenshot)
    (tmp_path / 'white.html').write_text('<!DOCTYPE html><html><body></body></html>')
    assert headless_browser.blank(headless_browser.render((tmp_path / 'white.html').as_uri()).screenshot)


# --- The session's pipeline run (din, esmm, pal, two_tower) ---------------------------------------------------


@pytest.fixture(name='written', scope='module')
def fixture_written(pipeline_run):
    path = pipeline_run.run_dir / 'report.html'
    assert f'report: {path}' in pipeline_run.result.stderr, pipeline_run.result.stderr[-3000:]
    text = path.read_text(encoding='utf-8')
    return text, _Page(text)


@pytest.mark.pipeline
def test_report_shows_every_model_its_metrics_and_figures(pipeline_run, written):
    text, page = written
    assert 'could not read' not in text, re.findall(r'could not read[^<]*', text)
    for model in pipeline_run.summaries:
        assert f'<section id="model-{model}">' in text
    # The per-slice tables' overall AUC is the summary's test AUC (the primary head's).
    for model, css in (('din', 'head-single'), ('esmm', 'head-ctr')):
        rows = page.table(css, f'model-{model}')
        assert round(float(rows['overall']['auc'][1]), 6) == pipeline_run.summaries[model]['test_auc']
        positions = [name for name in rows if name.startswith('position=')]
        assert len(positions) == 10 and sum(float(rows[p]['example_count'][1]) for p in positions) == float(
            rows['overall']['example_count'][1])
    assert float(page.table('head-cvr', 'model-esmm')['click=1']['auc'][1]) == pytest.approx(
        pipeline_run.summaries['esmm']['heads']['cvr']['auc_given_click'], abs=1e-6)
    # The ranking models' figures decode and are not blank; the retrieval model has none.
    alts = {image['alt']: image for image in page.images}
    for name in ('reliability diagram of din', 'AUC by position of din', 'reliability diagram of esmm ctr',
                 'AUC by position of pal'):
        assert _not_blank(_decoded(alts[name]['src'])), name
    assert all(_not_blank(_decoded(image['src'])) for image in page.images)
    assert not [image for image in page.images if image['section'] == 'model-two_tower']
    assert 'recall_at_50' in text[text.index('id="model-two_tower"'):]
    # One run: no baseline; blessed; the data had no anomaly.
    din = text[text.index('id="model-din"'):text.index('id="model-esmm"')]
    assert 'First model of this run: no blessed baseline to compare with.' in din and '>blessed<' in din
    assert '>no anomalies<' in text[text.index('id="anomalies"'):]


@pytest.mark.pipeline
def test_report_links_tensorboard_logs_and_needs_nothing_online(pipeline_run, written):
    text, page = written
    names = page.table('log-dirs', 'tensorboard')   # {model (and the board's other runs): row}
    assert set(pipeline_run.summaries) <= set(names)
    logs = [link['href'] for link in page.links if link['section'] == 'tensorboard']
    assert len(logs) == len(names)
    for href in logs:
        directory = urllib.parse.unquote(urllib.parse.urlparse(href).path)
        assert href.startswith('file://') and any('tfevents' in f for _, _, files in os.walk(directory) for f in files)
    assert f'python -m tfx_pipeline tensorboard {pipeline_run.run_dir}' in text
    urls = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert urls and all(u.startswith(('data:image/png;base64,', 'file://', '#')) for u in urls)
    assert '<script' not in text


@pytest.mark.pipeline
@needs_chromium
def test_report_renders_in_a_headless_browser(pipeline_run, written):
    text, page = written
    rendered = headless_browser.render((pipeline_run.run_dir / 'report.html').as_uri())
    assert rendered.console_errors == []
    assert len(rendered.images) == len(page.images) >= 6
    assert all(i['complete'] and i['width'] >= 300 and i['height'] >= 200 for i in rendered.images), rendered.images
    for title in ('Models', 'Metrics by head and slice', 'Reliability diagram', 'AUC by position',
                  'Comparison with the last blessed model', 'Data anomalies', 'TensorBoard'):
        assert title in rendered.text, title
    assert not headless_browser.blank(rendered.screenshot)
