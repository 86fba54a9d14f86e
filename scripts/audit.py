"""Known vulnerabilities in the pinned dependencies (pyproject.toml: the runtime pins and the
dev extras), by pip-audit against PyPI's vulnerability data (``-s pypi``).

Run by scripts/test.sh (so by CI). Exit 0 when nothing is known against a pin, 1 when
something is (the pin must be upgraded), and 0 with a ``audit: not checked`` line when the
vulnerability data cannot be reached from this machine (no network, or a registry mirror
that does not serve PyPI's per-release JSON): an unreachable service says nothing about the
pins, so it must not fail the build, but it must be said.

    python scripts/audit.py            # the report; --json FILE keeps pip-audit's JSON
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: bound of the whole audit, seconds (one request per pinned package)
TIMEOUT = 300


def pins() -> list[str]:
    """Every ``name==version`` of pyproject.toml's dependencies and dev extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        found += extra
    return sorted({p for p in found if "==" in p})


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        reqs, out = Path(tmp) / "requirements.txt", Path(tmp) / "audit.json"
        reqs.write_text("\n".join(pins()) + "\n")
        cmd = [sys.executable, "-m", "pip_audit", "-s", "pypi", "-r", str(reqs)]
        cmd += ["--no-deps", "--disable-pip", "--progress-spinner", "off"]
        cmd += ["-f", "json", "-o", str(out)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            print(f"audit: not checked: pip-audit took over {TIMEOUT}s (vulnerability data slow?)")
            return 0
        if not out.exists() or not out.read_text().strip():
            reason = (run.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"audit: not checked: the vulnerability data cannot be reached ({reason})")
            return 0
        report = json.loads(out.read_text())
    deps = report.get("dependencies", [])
    # pip-audit skips a release whose data it cannot get (it says "not found on PyPI"): a
    # mirror without PyPI's per-release JSON makes every pin a skip, which proves nothing
    skipped = [d for d in deps if d.get("skip_reason")]
    vulnerable = [d for d in deps if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            print(f"audit: {dep['name']}=={dep['version']}: {vuln['id']} (fixed in {fixed})")
    if skipped and len(skipped) == len(deps):
        print(
            f"audit: not checked: no vulnerability data for any of the {len(deps)} pins "
            f"(e.g. {skipped[0]['skip_reason']}): PyPI's per-release JSON is not reachable"
        )
        return 0
    for dep in skipped:
        print(f"audit: not checked: {dep['skip_reason']}")
    checked = len(deps) - len(skipped)
    print(f"audit: {checked} pinned packages checked, {len(vulnerable)} with known vulnerabilities")
    return 1 if vulnerable else 0


if __name__ == "__main__":
    sys.exit(main())
