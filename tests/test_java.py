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


def test_heap_the_jvm_no_longer_uses_is_given_back_while_it_idles(tmp_path):
    """The in-process JVM idles for minutes between Lucene calls while Python trains: the heap an index build
    grew must not stay resident for the rest of a suite (the periodic G1 collection of harness.java)."""
    code = ("import time\n"
            "from harness.java import autoclass\n"
            "mem = autoclass('java.lang.management.ManagementFactory').getMemoryMXBean()\n"
            "buffers = [autoclass('java.nio.ByteBuffer').allocate(100_000_000) for _ in range(10)]\n"
            "peak = mem.getHeapMemoryUsage().getCommitted()\n"
            "del buffers\n"
            "deadline = time.time() + 60\n"
            "while time.time() < deadline and mem.getHeapMemoryUsage().getCommitted() > peak / 2:\n"
            "    time.sleep(1)\n"
            "print(peak, mem.getHeapMemoryUsage().getCommitted())\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "HARNESS_JAVA_OPTS"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    peak, after = map(int, out.stdout.split())
    assert peak >= 1_000_000_000, peak
    assert after <= peak / 2, (peak, after)  # given back within a minute of idleness


def test_the_user_s_idle_collection_setting_wins():
    from harness.java import jvm_options

    assert jvm_options("") == ["-XX:G1PeriodicGCInterval=10000"]
    assert jvm_options("-Xmx8g -XX:G1PeriodicGCInterval=0") == ["-Xmx8g", "-XX:G1PeriodicGCInterval=0"]
