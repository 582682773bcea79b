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


def test_ctrl_c_with_the_jvm_running_is_python_s_keyboard_interrupt(tmp_path):
    """The JVM leaves SIGINT to Python (-Xrs): an interrupted BM25 build or search cleans up and says so,
    instead of the JVM ending the process from under it."""
    code = ("import os, signal, threading, time\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # (a background job starts with it ignored)
            "from harness.java import start_jvm\n"
            "start_jvm()\n"
            "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
            "try:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    print('interrupted in Python')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "interrupted in Python", (out.returncode, out.stderr[-2000:])
