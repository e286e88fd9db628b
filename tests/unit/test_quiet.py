"""Warnings ignored in overlapping blocks of several threads (``romanxr.kernels.quiet``).

With ``warnings.catch_warnings`` the first thread to leave its block restores the filter
list it saved, and a warning the other thread is still ignoring is shown: the race the
catalog's threads ran into (issue 15).
"""

from __future__ import annotations

import threading
import warnings

from romanxr.kernels.quiet import ignoring


class Noise(UserWarning):
    pass


def test_overlapping_blocks_in_two_threads_keep_ignoring_until_the_last_ends():
    a_inside, b_inside, a_done = threading.Event(), threading.Event(), threading.Event()

    def first():
        with ignoring(Noise):
            a_inside.set()
            b_inside.wait(5)
        a_done.set()

    def second():
        a_inside.wait(5)
        with ignoring(Noise):
            b_inside.set()
            a_done.wait(5)  # the first block has ended: this one is still open
            warnings.warn("inside the second block", Noise, stacklevel=1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        shown_in_b = [w for w in caught if issubclass(w.category, Noise)]
        after = list(warnings.filters)
        warnings.warn("after both blocks", Noise, stacklevel=1)
        shown_after = [w for w in caught if issubclass(w.category, Noise)]
    assert shown_in_b == []
    assert len(shown_after) == 1  # the filter went with the last block
    assert len(after) == len(before) and all(x is y for x, y in zip(after, before, strict=True))


def test_an_equal_filter_of_the_callers_is_left_in_place():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Noise)
        mine = warnings.filters[0]
        with ignoring(Noise):
            pass
        assert mine in warnings.filters
        assert any(f is mine for f in warnings.filters)


def test_other_categories_are_not_ignored():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ignoring(Noise):
            warnings.warn("silenced", Noise, stacklevel=1)
            warnings.warn("shown", RuntimeWarning, stacklevel=1)
    assert [w.category for w in caught] == [RuntimeWarning]
