"""The command line says when numba compiles for long (a cold cache), and only then."""

from __future__ import annotations

import io
import time

import numba
from numba.core import event

from romanxr.cli.compiling import NOTICE, _Watch, announce_compilation


def test_notice_after_a_long_compilation_only():
    out = io.StringIO()
    watch = _Watch(out, after=0.05)
    watch.start()
    watch.end()  # short: done before the timer looks
    time.sleep(0.2)
    assert out.getvalue() == ""
    watch.start()
    time.sleep(0.2)  # still compiling when the timer looks
    watch.end()
    watch.start()
    time.sleep(0.2)
    watch.end()
    assert out.getvalue() == NOTICE + "\n"  # once


def test_listener_sees_numba_compilations():
    listener = announce_compilation(io.StringIO(), after=3600)
    try:

        @numba.njit
        def add_one(x):
            return x + 1

        assert add_one(1) == 2
        assert listener.watch.timer is not None  # the compile started the timer
        assert listener.watch.active == 0
    finally:
        if listener.watch.timer is not None:
            listener.watch.timer.cancel()
        event.unregister("numba:compile", listener)


def test_the_notice_ends_with_the_command():
    from romanxr.cli.compiling import announcing_compilation

    out = io.StringIO()
    with announcing_compilation(out, after=0.05) as listener:
        listener.watch.start()  # a compilation still going when the command ends
    time.sleep(0.2)
    assert out.getvalue() == ""  # no line after the command returned
    assert listener not in event._registered["numba:compile"]


def test_a_closed_stream_is_not_an_error():
    out = io.StringIO()
    watch = _Watch(out, after=0.01)
    out.close()
    watch.start()
    time.sleep(0.1)  # the timer fires and prints on a closed stream: suppressed
    assert watch.said
