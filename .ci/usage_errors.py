"""A mistyped option on every ``medseg`` command: one line on stderr, exit code 2, no traceback.

Run with the Python of the installation under test; it calls that installation's ``medseg``
script (next to the interpreter), as a user would, once per command. Exit code 1 lists the
commands that failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer.main

from medseg.cli.main import app_typer


def leaf_commands(command, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", None)
    if not subs:
        return [words]
    return [found for name, sub in subs.items() for found in leaf_commands(sub, (*words, name))]


def main() -> int:
    script = Path(sys.executable).with_name("medseg")
    commands = leaf_commands(typer.main.get_command(app_typer))
    failed = []
    for words in commands:
        proc = subprocess.run(
            [str(script), *words, "--no-such-option"], capture_output=True, text=True, check=False
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        ok = proc.returncode == 2 and len(lines) == 1 and "--no-such-option" in lines[0]
        if not ok:
            failed.append(
                f"medseg {' '.join(words)}: exit {proc.returncode}, stderr {proc.stderr!r}"
            )
    for line in failed:
        print(line, file=sys.stderr)
    print(
        f"usage errors: {len(commands) - len(failed)} of {len(commands)} commands one line, exit 2"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
