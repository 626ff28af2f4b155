"""MkDocs hook: fill the reference pages' generation markers (pgprobe.docs_reference)
with tables generated from the CLI parsers, the config schema and the datasets' specs,
using this checkout's pgprobe."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pgprobe.docs_reference import render  # noqa: E402


def on_page_markdown(markdown, page, config, files):
    return render(markdown)
