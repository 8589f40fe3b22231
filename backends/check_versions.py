#!/usr/bin/env python3
"""Check that every plug-in package in backends/ has ggsight's version and depends on exactly it.

    python backends/check_versions.py        # exit 1 and name the mismatches, if any
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent


def main() -> int:
    version = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]["version"]
    bad = []
    for pyproject in sorted(HERE.glob("ggsight-*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        pins = [d for d in project.get("dependencies", []) if re.match(r"ggsight\s*==", d)]
        if project["version"] != version:
            bad.append(f"{pyproject.parent.name}: version {project['version']}, ggsight is {version}")
        if pins != [f"ggsight=={version}"]:
            bad.append(f"{pyproject.parent.name}: depends on {pins or 'no ggsight==...'}, "
                       f"want ggsight=={version}")
    for line in bad:
        print(line, file=sys.stderr)
    if not bad:
        print(f"backends/: every plug-in is {version} and depends on ggsight=={version}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
