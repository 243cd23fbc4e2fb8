#!/usr/bin/env python3
"""Generates the Python client from openapi/invites.json and drives the lifecycle with it.

    python3 clients/python/run.py [--venv DIR] [--out DIR] BASE_URL DEMO_JSON

1. A virtualenv (default target/clients/python-venv) with requirements.txt installed; skipped
   when the venv already holds exactly this requirements.txt (its hash is kept in the venv).
2. openapi-python-client generates the `invites_client` package into --out (default
   target/clients/python) with config.yaml; any output of the generator that is not one of the
   warnings explained in README.md ("Generator warnings") fails the run.
3. Every generated module is imported (a generator bug that yields unimportable code fails here,
   by module, rather than in the middle of a family).
4. lifecycle.py runs with the venv's python and the generated package on PYTHONPATH: one line per
   family on stdout, `python <family>: ok (<n> calls: ...)`; at the first step that does not
   answer as clients/LIFECYCLE.md says, the step, status and body on stderr and a non-zero exit.

Progress goes to stderr, so stdout holds only the families' lines. Needs only the standard library.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOCUMENT = ROOT / "openapi" / "invites.json"
REQUIREMENTS = HERE / "requirements.txt"
CONFIG = HERE / "config.yaml"
README = HERE / "README.md"
LIFECYCLE = HERE / "lifecycle.py"
PACKAGE = "invites_client"
# Inside the venv: the sha256 of the requirements.txt it was installed from.
STAMP = "invites-requirements.sha256"

# Time limits of each subprocess, in seconds. `cargo xtask clients` gives the whole run 300 s and
# kills only this script when they are up: each step here ends its own subprocess within them.
VENV_TIMEOUT = 60
PIP_TIMEOUT = 240
GENERATE_TIMEOUT = 120
IMPORT_TIMEOUT = 60
LIFECYCLE_TIMEOUT = 240

# Lines the generator prints around any warnings (and at the start of every run): not warnings.
FRAMING = (
    re.compile(r"^Generating .*$"),
    re.compile(
        r"^Warning\(s\) encountered while generating\. Client was generated, but some pieces may be missing$"
    ),
    re.compile(
        r"^If you believe this was a mistake or this tool is missing a feature you need, please open an issue at \S+$"
    ),
)

STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[python client {time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    print(f"python client: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def run_bounded(cmd: list[str], what: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """`cmd` with a time limit; the run fails naming `what` when it is exceeded."""
    try:
        return subprocess.run(cmd, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        fail(f"{what} did not finish within {timeout} s{': ' + out[-2000:] if out else ''}")
    except OSError as e:
        fail(f"{what} could not start: {e}")
    raise AssertionError  # unreachable: fail() exits


def ensure_venv(venv: Path) -> Path:
    """The venv's python, with requirements.txt installed (once per version of that file)."""
    python = venv_bin(venv) / "python"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = venv / STAMP
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        progress(f"venv {venv}: requirements.txt already installed")
        return python
    if not python.exists():
        progress(f"creating venv {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        r = run_bounded(
            [sys.executable, "-m", "venv", str(venv)],
            "python3 -m venv",
            VENV_TIMEOUT,
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            fail(f"python3 -m venv {venv} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    stamp.unlink(missing_ok=True)
    pins = [p for p in REQUIREMENTS.read_text().splitlines() if p.strip() and not p.lstrip().startswith("#")]
    progress(f"pip install -q -r requirements.txt ({len(pins)} pinned packages) into {venv}")
    cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)]
    # pip -q prints nothing while it works: say every 10 s that it still does, bounded.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        deadline = time.monotonic() + PIP_TIMEOUT
        while True:
            try:
                out, _ = p.communicate(timeout=10)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    p.kill()
                    p.communicate()
                    fail(f"pip install did not finish within {PIP_TIMEOUT} s")
                progress("  pip install still running")
    if p.returncode != 0:
        fail(f"pip install -r {REQUIREMENTS} failed ({p.returncode}):\n{out}")
    stamp.write_text(wanted + "\n")
    progress("pip install done")
    return python


def explained_warnings() -> list[list[str]]:
    """The warnings README.md explains: each ```generator-warning fence of its "Generator
    warnings" section, as its non-empty lines, stripped (the generator's output is read alike)."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Generator warnings\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if section is None:
        fail(f'{README} has no "## Generator warnings" section')
    fences = re.findall(r"^```generator-warning\n(.*?)^```", section.group(1), re.S | re.M)
    return [lines(f) for f in fences if lines(f)]


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "").splitlines() if line.strip()]


def unexplained(output: str, allowed: list[list[str]]) -> tuple[list[list[str]], int, set[int]]:
    """What the generator printed beyond its framing lines and the explained warnings: runs of
    consecutive unexplained lines; also how many explained warnings were printed, and which.

    An explained warning matches only as a whole, line for line, so a warning that changes in
    any way, or a new one, is unexplained."""
    printed = [line for line in lines(output) if not any(f.match(line) for f in FRAMING)]
    runs: list[list[str]] = []
    matched, seen = 0, set()
    i, current = 0, []
    while i < len(printed):
        best = max(
            ((n, w) for n, w in enumerate(allowed) if printed[i : i + len(w)] == w),
            key=lambda nw: len(nw[1]),
            default=None,
        )
        if best is None:
            current.append(printed[i])
            i += 1
            continue
        if current:
            runs.append(current)
            current = []
        matched += 1
        seen.add(best[0])
        i += len(best[1])
    if current:
        runs.append(current)
    return runs, matched, seen


def generate(venv: Path, out: Path) -> None:
    generator = venv_bin(venv) / "openapi-python-client"
    progress(f"openapi-python-client generate -> {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # The post hooks (config.yaml) run `ruff`: the venv's, pinned.
    env["PATH"] = f"{venv_bin(venv)}{os.pathsep}{env.get('PATH', '')}"
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"})
    r = run_bounded(
        [
            str(generator),
            "generate",
            "--path",
            str(DOCUMENT),
            "--config",
            str(CONFIG),
            "--output-path",
            str(out),
            "--overwrite",
        ],
        "openapi-python-client generate",
        GENERATE_TIMEOUT,
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = r.stdout or ""
    if r.returncode != 0:
        fail(f"openapi-python-client generate failed ({r.returncode}):\n{output}")
    if not (out / PACKAGE / "__init__.py").exists():
        fail(f"openapi-python-client did not write {out / PACKAGE}:\n{output}")
    allowed = explained_warnings()
    runs, matched, seen = unexplained(output, allowed)
    if runs:
        shown = [line for run in runs for line in run + [""]]
        more = f"\n... and {len(shown) - 80} more lines" if len(shown) > 80 else ""
        fail(
            f"openapi-python-client printed {sum(map(len, runs))} line(s) not explained in "
            f'{README.name} ("Generator warnings"): explain each warning there (what it is, why it '
            f"is harmless or what we do about it) or fix its cause:\n\n" + "\n".join(shown[:80]) + more
        )
    for n, w in enumerate(allowed):
        if n not in seen:
            progress(
                f"note: an explained warning is no longer printed (remove it from {README.name}): {w[0]}"
            )
    said = f"{matched} warning(s), each explained in {README.name}" if matched else "no warnings"
    progress(f"generated {PACKAGE} ({said})")


def check_imports(python: Path, out: Path) -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {PACKAGE} as p\n"
        "bad = []\n"
        "for m in pkgutil.walk_packages(p.__path__, p.__name__ + '.'):\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{m.name}: {type(e).__name__}: {e}')\n"
        "print('\\n'.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(out), PYTHONDONTWRITEBYTECODE="1")
    r = run_bounded(
        [str(python), "-c", code],
        "importing the generated package",
        IMPORT_TIMEOUT,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        fail(f"the generated package does not import:\n{r.stdout}{r.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=ROOT / "target" / "clients" / "python-venv")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "clients" / "python")
    parser.add_argument("base_url", help="the demo server, e.g. http://127.0.0.1:8080")
    parser.add_argument("demo_json", type=Path, help="what `invites serve --demo --demo-out FILE` wrote")
    args = parser.parse_args()
    venv, out = args.venv.resolve(), args.out.resolve()
    if not args.demo_json.is_file():
        fail(f"{args.demo_json}: no such file (the server's --demo-out)")
    if out in (ROOT, HERE, ROOT / "target") or out == Path(out.anchor):
        fail(f"--out {out}: the generator replaces that directory; give one of its own")

    python = ensure_venv(venv)
    generate(venv, out)
    check_imports(python, out)

    progress(f"lifecycle against {args.base_url}")
    env = dict(os.environ, PYTHONPATH=str(out), PYTHONDONTWRITEBYTECODE="1")
    r = run_bounded(
        [str(python), str(LIFECYCLE), args.base_url, str(args.demo_json.resolve())],
        "lifecycle.py",
        LIFECYCLE_TIMEOUT,
        env=env,
    )
    if r.returncode != 0:
        progress(f"lifecycle failed ({r.returncode})")
        return 1
    progress("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
