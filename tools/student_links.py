"""Sphinx extension: publish student/ beside the HTML and link each chapter page to its student version.

Registered in ``_config.yml`` (``sphinx: local_extensions`` puts tools/ on the path, ``extensions``
names it). At the end of an HTML build it *generates* the student version of every chapter from the
chapter itself (:func:`student_notebooks.expected`, the same code as ``python tools/student_notebooks.py``)
into ``<outdir>/student/``, so the published versions never lag the chapters; the committed
``student/`` folder (which Colab opens from GitHub) is held to the same text by a test. On every
page whose source is a chapter (``book/NN_name``) it adds, under the title, a
download link to ``../student/NN_name.ipynb`` and, when ``repository: url:`` is on GitHub, a link that
opens ``student/NN_name.ipynb`` of the configured branch in Colab. The links are inserted into the
rendered HTML, so they add no document nodes and no warnings to the strict build.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import Any

_CHAPTER = re.compile(r"^book/(\d\d_[\w-]+)$")
_GITHUB = re.compile(r"^https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")


def _root(app: Any) -> Path:
    return Path(app.confdir)


def _student_file(app: Any, pagename: str) -> Path | None:
    found = _CHAPTER.match(pagename)
    if not found:
        return None
    chapter = _root(app) / "book" / f"{found.group(1)}.ipynb"
    return _root(app) / "student" / chapter.name if chapter.is_file() else None


def colab_url(repository_url: str, branch: str, name: str) -> str | None:
    """Return the Colab address of ``student/<name>`` in a GitHub repository, or None for other hosts."""
    found = _GITHUB.match(repository_url or "")
    if not found:
        return None
    owner, repo = found.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/student/{name}"


def links_html(pagename: str, name: str, colab: str | None) -> str:
    """Return the HTML paragraph of links for the chapter page ``pagename`` and its student notebook ``name``."""
    depth = pagename.count("/")
    href = "../" * depth + f"student/{html.escape(name)}"
    parts = [f'<a class="reference external" href="{href}" download="{html.escape(name)}">download the notebook</a>']
    if colab:
        parts.append(f'<a class="reference external" href="{html.escape(colab)}">open it in Colab</a>')
    return ('<p class="student-notebook"><strong>Student version</strong> (exercises without their '
            f'solutions): {" or ".join(parts)}.</p>\n')


def add_links(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Insert the student-version links under the first heading of a chapter page."""
    path = _student_file(app, pagename)
    body = context.get("body")
    if path is None or not isinstance(body, str):
        return
    repo = app.config.html_theme_options.get("repository_url", "") if app.config.html_theme_options else ""
    branch = app.config.html_theme_options.get("repository_branch", "main") if app.config.html_theme_options else "main"
    paragraph = links_html(pagename, path.name, colab_url(repo, branch, path.name))
    end = body.find("</h1>")
    context["body"] = body[: end + 5] + "\n" + paragraph + body[end + 5 :] if end >= 0 else paragraph + body


def copy_student(app: Any, exception: Exception | None) -> None:
    """Generate the student version of every chapter into the HTML output's student/ folder."""
    if exception is not None or app.builder.format != "html":
        return
    import student_notebooks  # tools/ is on the path (local_extensions)

    target = Path(app.outdir) / "student"
    target.mkdir(parents=True, exist_ok=True)
    for path, text in student_notebooks.expected(_root(app)).items():
        (target / path.name).write_text(text, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    """Register the two hooks."""
    app.connect("html-page-context", add_links)
    app.connect("build-finished", copy_student)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
