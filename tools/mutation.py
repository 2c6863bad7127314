"""``make mutation``: mutmut on a copy of the project, the score per file, the stats JSON.

mutmut 3 mutates the files ``[tool.mutmut] only_mutate`` names (pyproject.toml), runs the tests
that reach each mutant and records which tests catch it. It writes its copy (``mutants/``) beside
the project it runs in, so this script first copies the parts mutmut needs (pyproject.toml,
tests/, ``source_paths``, ``also_copy``) from the working tree, or from a commit with ``--rev``,
into ``--workdir`` (default ``.scones/mutation/project``) and runs there: the checkout is never
touched and concurrent edits cannot change a run half way.

Output (in ``--workdir``): ``mutmut-cicd-stats.json`` (mutmut's ``export-cicd-stats``, every file
together), ``mutation-scores.json`` (the same counts per file and in total, with the score) and
``survivors.txt`` (``mutmut results``: every mutant not killed; ``mutmut show NAME`` in
``project/`` prints its diff). The score is mutmut's: (killed + timeout) / (total - skipped).

Usage: ``python tools/mutation.py [--rev REV] [--workdir DIR] [--max-children N]
[--deselect NODE_ID ...] [--resume]`` (``make mutation MUTATION_ARGS="..."``). ``--resume``
keeps the last copy and its results, takes ``tests/`` anew and tests again only the mutants not
killed: the loop for writing tests against survivors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_WORKDIR = ROOT / ".scones" / "mutation"
#: mutmut's exit codes -> status (mutmut.stats.status_by_exit_code; anything else: suspicious).
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS |= {35: "suspicious", 36: "timeout", 37: "caught by type check", -24: "timeout"}
STATUS |= {24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault"}


def mutmut_config(root: Path = ROOT) -> dict[str, Any]:
    """``[tool.mutmut]`` of ``root/pyproject.toml``."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    config: dict[str, Any] = data["tool"]["mutmut"]
    return config


def needed_paths(config: dict[str, Any]) -> list[str]:
    """What mutmut reads: pyproject.toml, tests/, the source paths and ``also_copy``."""
    return ["pyproject.toml", "tests", *config["source_paths"], *config.get("also_copy", [])]


def copy_project(dest: Path, rev: str | None, config: dict[str, Any]) -> None:
    """Copy the needed paths from the working tree (tracked and new files) or commit ``rev``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    paths = needed_paths(config)
    if rev:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "--", *paths],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "-co", "--exclude-standard", "--", *paths],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for name in filter(None, listed.split("\0")):
            source = ROOT / name
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)


def deselect(project: Path, node_ids: list[str]) -> None:
    """Leave ``node_ids`` (pytest node id prefixes) out of the copy's mutmut runs."""
    path = project / "pyproject.toml"
    text = path.read_text()
    marker = "\npytest_add_cli_args = [\n"
    if marker not in text:
        raise SystemExit("pyproject.toml: [tool.mutmut] pytest_add_cli_args must be a list")
    lines = "".join(f'  "--deselect={node}",\n' for node in node_ids)
    path.write_text(text.replace(marker, marker + lines, 1))


def sync_tests(project: Path, rev: str | None) -> None:
    """Replace the copy's ``tests/`` with the working tree's (or ``rev``'s), for ``--resume``."""
    fresh = project.parent / "tests-fresh"
    if fresh.exists():
        shutil.rmtree(fresh)
    copy_project(fresh, rev, {"source_paths": [], "also_copy": []})
    shutil.rmtree(project / "tests")
    shutil.move(fresh / "tests", project / "tests")
    shutil.rmtree(fresh)


def not_killed(project: Path, files: list[str]) -> list[str]:
    """The mutants of ``files`` that the last run did not kill (survived, no tests, ...)."""
    names = []
    for path in files:
        meta = json.loads((project / "mutants" / f"{path}.meta").read_text())
        for name, code in meta["exit_code_by_key"].items():
            if code is not None and STATUS.get(code, "suspicious") not in ("killed", "timeout"):
                names.append(name)
    return names


def run_mutmut(project: Path, max_children: int, log: Path, names: list[str] | None = None) -> int:
    """``mutmut run`` in ``project``, its output kept in ``log``; its exit status.

    mutmut redraws one progress line with ``\\r``; it is shown here every 30 s at most.
    """
    command = [str(BIN / "mutmut"), "run", "--max-children", str(max_children), *(names or [])]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    shown = 0.0
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        pending = ""
        while chunk := os.read(process.stdout.fileno(), 65536):
            out.write(chunk)
            *lines, pending = (pending + chunk.decode(errors="replace")).split("\n")
            for line in lines:  # finished lines: their last redraw
                if line.split("\r")[-1].strip():
                    print(line.split("\r")[-1], flush=True)
            pending = pending.split("\r")[-1]
            if pending.strip() and time.monotonic() - shown > 30:
                print(pending, flush=True)
                shown = time.monotonic()
        return process.wait()


def file_counts(project: Path, path: str) -> dict[str, int]:
    """Mutants of ``path`` per status, from mutmut's ``mutants/<path>.meta``."""
    meta = json.loads((project / "mutants" / f"{path}.meta").read_text())
    counts: dict[str, int] = {}
    for code in meta["exit_code_by_key"].values():
        status = "not checked" if code is None else STATUS.get(code, "suspicious")
        counts[status] = counts.get(status, 0) + 1
    return counts


def score(counts: dict[str, int]) -> float | None:
    """mutmut's score: (killed + timeout) / (total - skipped), in percent."""
    tested = sum(counts.values()) - counts.get("skipped", 0)
    if tested <= 0:
        return None
    return 100.0 * (counts.get("killed", 0) + counts.get("timeout", 0)) / tested


def scores(project: Path, files: list[str]) -> dict[str, Any]:
    """Counts and score per file and in total."""
    per_file = {path: file_counts(project, path) for path in files}
    total: dict[str, int] = {}
    for counts in per_file.values():
        for status, n in counts.items():
            total[status] = total.get(status, 0) + n
    return {
        "files": {
            p: {**c, "total": sum(c.values()), "score": score(c)} for p, c in per_file.items()
        },
        "total": {**total, "total": sum(total.values()), "score": score(total)},
    }


def print_table(result: dict[str, Any]) -> None:
    """The score per file and in total, as a table."""
    rows = [*result["files"].items(), ("total", result["total"])]
    print(
        f"\n{'file':<40} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'score':>7}"
    )
    for path, c in rows:
        shown = "-" if c["score"] is None else f"{c['score']:.1f} %"
        print(
            f"{path:<40} {c['total']:>8} {c.get('killed', 0):>7} {c.get('timeout', 0):>8} "
            f"{c.get('survived', 0):>9} {shown:>7}"
        )


def main(argv: list[str] | None = None) -> int:
    """Copy, run mutmut, export its stats, print and write the scores."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="copy this commit (git archive) instead of the working tree")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where to run")
    parser.add_argument(
        "--max-children", type=int, default=os.cpu_count() or 2, help="mutants tested at once"
    )
    parser.add_argument(
        "--deselect",
        action="append",
        default=[],
        metavar="NODE_ID",
        help="leave these tests out (a known failure being fixed elsewhere); recorded in the JSON",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the last run's copy and results; take the tests anew and test again only "
        "the mutants it did not kill (after writing tests for them)",
    )
    args = parser.parse_args(argv)
    config = mutmut_config()
    workdir: Path = args.workdir.resolve()
    project = workdir / "project"
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    names: list[str] = []
    if args.resume and (project / "mutants").is_dir():
        sync_tests(project, args.rev)
        names = not_killed(project, list(config["only_mutate"]))
        if not names:
            print("every mutant of the last run was killed: nothing to test again")
    else:
        copy_project(project, args.rev, config)
        if args.deselect:
            deselect(project, args.deselect)
    status = 0
    if names or not args.resume:
        status = run_mutmut(project, args.max_children, workdir / "mutmut-run.log", names)
    if status != 0:
        print(f"mutmut run failed (exit {status}); its output: {workdir / 'mutmut-run.log'}")
        return status
    mutmut = str(BIN / "mutmut")
    subprocess.run(
        [mutmut, "export-cicd-stats"], cwd=project, check=True, stdout=subprocess.DEVNULL
    )
    shutil.copy2(project / "mutants" / "mutmut-cicd-stats.json", workdir)
    survivors = subprocess.run(
        [mutmut, "results"], cwd=project, check=True, capture_output=True, text=True
    ).stdout
    (workdir / "survivors.txt").write_text(survivors)
    result = scores(project, list(config["only_mutate"]))
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["rev"] = args.rev or "working tree"
    result["deselected"] = args.deselect
    result["resumed"] = bool(args.resume)
    (workdir / "mutation-scores.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\n{result['wall_s']:.0f} s; mutmut's stats: {workdir / 'mutmut-cicd-stats.json'}")
    print(f"per file: {workdir / 'mutation-scores.json'}; not killed: {workdir / 'survivors.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
