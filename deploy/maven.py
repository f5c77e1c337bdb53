"""Resolve a service's jars with Maven into the cache directory (outside the repo)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deploy.process import LaunchError

POM_DIR = Path(__file__).parent / "maven"


def require_tool(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LaunchError(f"`{tool}` was not found on PATH. {hint}")
    return path


def require_java() -> str:
    java = require_tool(
        "java", "Install a JDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`)."
    )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    first = (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else ""
    version = first.split('"')[1] if '"' in first else ""
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major < 17:
        raise LaunchError(f"Java 17 or newer is needed, found: {first or 'unknown version'}")
    return java


def resolve_classpath(component: str, version: str, cache_dir: Path) -> Path:
    """Return a directory holding every jar `component` needs, downloading on first use.

    A `.complete` marker is written last, so an interrupted download is redone next time
    rather than leaving a half-filled lib directory that fails at start-up.
    """
    lib = cache_dir / f"{component}-{version}" / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    mvn = require_tool("mvn", "Install Maven 3 (e.g. `apt-get install maven`).")
    if lib.exists():
        shutil.rmtree(lib)
    lib.mkdir(parents=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM_DIR / component / "pom.xml"),
        f"-D{component}.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={lib}",
        "-DincludeScope=runtime",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise LaunchError(f"Maven could not resolve {component} {version}:\n{tail}")
    marker.write_text(version)
    return lib
