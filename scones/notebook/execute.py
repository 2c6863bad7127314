"""Run a notebook top to bottom without a browser, papermill style, and write it as HTML.

``make notebook-html`` and ``tests/stack/test_notebook.py`` use it::

    python -m scones.notebook.execute notebooks/walkthrough.ipynb --html out/walkthrough.html \\
        -p EPOCHS 5 -p TARGET '"twin"'

Parameters go into a new cell after the cell tagged ``parameters`` (tagged
``injected-parameters``), as papermill does. A failing cell stops the run with that cell's error
(``nbclient``'s ``CellExecutionError``: the cell's source and the traceback). The HTML loads
nothing from the network (no require.js, no MathJax); images are embedded, graphs inline SVG.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import time
from pathlib import Path
from typing import Any

from scones.errors import CommandError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


def read(path: Path) -> Any:
    """The notebook at ``path`` (nbformat 4)."""
    import nbformat

    return nbformat.read(path, as_version=4)


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> None:
    """Add a cell setting ``parameters`` right after the ``parameters`` cell (or first)."""
    import nbformat

    if not parameters:
        return
    source = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    tagged = [i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.metadata.get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


def execute(nb: Any, *, cwd: Path, kernel_name: str = "python3", timeout: int = 600) -> Any:
    """Run every cell in a fresh kernel started in ``cwd``; returns the notebook with outputs.

    ``kernel_name`` "python3" is the ipykernel of this Python (the one running this code)."""
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
    )
    client.execute()
    return nb


def to_html(nb: Any) -> str:
    """The executed notebook as one self-contained HTML page (nothing loaded from the network)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(require_js_url="", mathjax_url="")
    body, _ = exporter.from_notebook_node(nb)
    for empty in ('<script src=""></script>', '<script src=""> </script>'):
        body = body.replace(empty, "")
    return str(body)


def plain(text: str) -> str:
    """``text`` without terminal colour codes (a cell's traceback carries them)."""
    return _ANSI.sub("", text)


def _value(text: str) -> Any:
    """A parameter value: a Python literal, else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv: list[str] | None = None) -> int:
    """Command line: run the notebook, write HTML (and the executed notebook), print the time."""
    parser = argparse.ArgumentParser(
        prog="python -m scones.notebook.execute",
        description="Run a notebook top to bottom (nbclient) and write it as self-contained HTML.",
        epilog="example: python -m scones.notebook.execute notebooks/walkthrough.ipynb"
        " --html .scones/notebook/walkthrough.html -p EPOCHS 5",
    )
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--html", type=Path, help="write the executed notebook as HTML here")
    parser.add_argument("--executed", type=Path, help="write the executed .ipynb here")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter (a Python literal, else text)")  # fmt: skip
    parser.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    from nbclient.exceptions import CellExecutionError

    nb = read(args.notebook)
    inject_parameters(nb, {name: _value(value) for name, value in args.p})
    started = time.perf_counter()
    try:
        execute(
            nb, cwd=args.notebook.resolve().parent, kernel_name=args.kernel, timeout=args.timeout
        )
    except CellExecutionError as exc:
        print(f"{args.notebook}: a cell failed:\n{plain(str(exc))}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"{args.notebook}: {exc}", file=sys.stderr)
        return 1
    print(f"executed {args.notebook} in {time.perf_counter() - started:.1f} s")
    if args.executed:
        import nbformat

        args.executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, args.executed)
        print(f"wrote {args.executed}")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(to_html(nb), encoding="utf-8")
        print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
