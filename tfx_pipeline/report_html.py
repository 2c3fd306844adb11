"""The markup of the run's report (:mod:`tfx_pipeline.report`): the page, its sections, tables and values, every
string escaped.

Choice: one self-contained page (inline CSS, figures as data URLs, no script, no external URL), so that it opens from
the file system, offline, in any browser, and can be mailed or archived as one file.
"""

import html
import math
from typing import Any, Callable, Iterable, Optional, Sequence

from absl import logging

CSS = """
body { font: 14px/1.45 -apple-system, 'Segoe UI', 'DejaVu Sans', Arial, sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 28px 48px; background: #fff; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; padding-top: 8px;
     border-top: 2px solid #1f77b4; } h3 { font-size: 16px; margin: 22px 0 6px; } h4 { margin: 12px 0 4px; }
nav a { margin-right: 14px; } .meta { color: #555; margin: 2px 0; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dbe0; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; text-align: center; }
td.name, th.name { text-align: left; } td.name { white-space: normal; max-width: 760px; }
tr:nth-child(even) td { background: #fafbfc; }
.scroll { overflow-x: auto; } figure { display: inline-block; margin: 6px 18px 12px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #e3e5e8; }
figcaption { color: #555; font-size: 12px; max-width: 600px; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #b42318; font-weight: 600; } .note { color: #555; }
.error { color: #b42318; background: #fff4f2; border-left: 3px solid #b42318; padding: 4px 8px; white-space: pre-wrap; }
code { background: #f0f2f5; padding: 1px 4px; border-radius: 3px; }
"""


class Markup(str):
    """Text already in HTML (a :func:`state`, a :func:`link`): :func:`cell` puts it in as it is."""


class Difference(float):
    """A difference: :func:`number` writes its sign."""


def esc(value: Any) -> str:
    """``value`` as text safe in HTML content and in double-quoted attributes."""
    return html.escape(str(value), quote=True)


def number(value: Any) -> str:
    """A table's text for a value: integers (and whole floats from 2 on: counts) with thousands separators, other
    floats to 4 decimals, None as a dash."""
    if value is None:
        return '—'
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return esc(value)
    if isinstance(value, float) and not math.isfinite(value):
        return esc(value)
    if isinstance(value, Difference):
        return f'{value:+.4f}'
    if isinstance(value, int) or (value.is_integer() and abs(value) >= 2):
        return f'{value:,.0f}'
    return f'{value:.4f}'


def cell(value: Any, header: bool = False, name: bool = False) -> str:
    """A ``<td>`` (``<th>`` with ``header``): text left-aligned, numbers right-aligned keeping their full value in
    ``data-value`` (the shown text is rounded), None as a dash; ``name``: left-aligned whatever it holds."""
    tag = 'th' if header else 'td'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        css = ' class="name"' if name else ''
        return f'<{tag}{css} data-value="{esc(repr(value))}">{number(value)}</{tag}>'
    css = ' class="name"' if name or value is not None else ''   # text left-aligned, numbers and dashes right
    if isinstance(value, Markup):
        return f'<{tag}{css}>{value}</{tag}>'
    return f'<{tag}{css}>{esc("—" if value is None else value)}</{tag}>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], css: str = '') -> str:
    """A table: the header row, then one row a sequence (its first cell a name, left-aligned)."""
    head = '<tr>' + ''.join(f'<th{" class=name" if i == 0 else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = ''.join('<tr>' + ''.join(cell(v, name=i == 0) for i, v in enumerate(row)) + '</tr>\n' for row in rows)
    return f'<div class="scroll"><table class="{esc(css)}">{head}</tr>\n{body}</table></div>'


def key_values(pairs: Iterable[Sequence[Any]]) -> str:
    """A two-column table of ``(name, value)`` pairs."""
    return '<table>' + ''.join(f'<tr>{cell(k, name=True)}{cell(v)}</tr>' for k, v in pairs) + '</table>'


def state(ok: Optional[bool], yes: str, no: str, unknown: str = 'not run') -> Markup:
    """A coloured yes/no (None: ``unknown``)."""
    if ok is None:
        return Markup(f'<span class="note">{esc(unknown)}</span>')
    return Markup(f'<span class="ok">{esc(yes)}</span>' if ok else f'<span class="bad">{esc(no)}</span>')


def link(url: str, text: Optional[str] = None) -> Markup:
    return Markup(f'<a href="{esc(url)}">{esc(text or url)}</a>')


def figure(img: str, caption: str) -> str:
    """A figure: an ``<img>`` tag (:func:`tfx_pipeline.report_figures.img_tag`) and its escaped caption."""
    return f'<figure>{img}<figcaption>{esc(caption)}</figcaption></figure>'


def section(title: str, build: Callable[[], str], level: int = 3, anchor: Optional[str] = None) -> str:
    """A titled section whose body ``build()`` returns; when it raises, the section says what could not be read and
    the traceback goes to the log, so one unreadable output never costs the rest of the report."""
    try:
        body = build()
    except Exception as e:  # pylint: disable=broad-except  # shown in the page, traceback in the log
        logging.exception('report: could not read %s', title)
        body = f'<p class="error">could not read {esc(title.lower())}: {esc(type(e).__name__)}: {esc(e)}</p>'
    ident = f' id="{esc(anchor)}"' if anchor else ''
    return f'<section{ident}><h{level}>{esc(title)}</h{level}>\n{body}\n</section>\n'


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{esc(title)}</title>\n'
            f'<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n')
