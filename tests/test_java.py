"""The JVM Pyserini runs in: started with a crash-report path outside the working directory."""

from __future__ import annotations

import subprocess
import sys
import tempfile


def test_jvm_crash_reports_go_to_the_temp_dir_not_the_working_directory(tmp_path):
    code = ("from harness.java import autoclass\n"
            "bean = autoclass('java.lang.management.ManagementFactory').getRuntimeMXBean()\n"
            "print(bean.getInputArguments().toString())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "HARNESS_JAVA_OPTS": "-Xmx512m"})
    assert out.returncode == 0, out.stderr[-2000:]
    args = out.stdout.strip()
    assert f"-XX:ErrorFile={tempfile.gettempdir()}/distill-harness-hs_err_pid%p.log" in args
    assert "-Xmx512m" in args  # the user's options still apply, after ours (so they may override it)
    assert not list(tmp_path.iterdir())
