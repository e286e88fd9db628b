"""recording_logs: the run's romanxr lines in romancal's cal_logs format, without changing
what the logger shows or touching other loggers."""

from __future__ import annotations

import io
import logging
import re

import pytest

from romanxr.pipeline.run_log import recording_logs

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z :: romanxr(\.\w+)* :: (\w+) :: (.*)$")


@pytest.fixture
def shown():
    """A handler on the romanxr logger (level WARNING) standing in for a terminal."""
    logger = logging.getLogger("romanxr")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    before = (logger.level, logger.propagate, list(logger.handlers))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(before[0])
    assert (logger.level, logger.propagate, logger.handlers) == before


def test_info_lines_recorded_in_romancals_format_but_not_shown(shown):
    with recording_logs() as lines:
        logging.getLogger("romanxr").info("step %s with defaults", "dq_init")
        logging.getLogger("romanxr.pipeline").warning("careful")
        logging.getLogger("romanxr").debug("not recorded")
        logging.getLogger("someone.else").warning("not ours")
    assert len(lines) == 2
    first, second = (LINE.match(line) for line in lines)
    assert first.group(2, 3) == ("INFO", "step dq_init with defaults")
    assert second.group(2, 3) == ("WARNING", "careful")
    # the terminal shows what the WARNING level let through before, once
    assert shown.getvalue() == "careful\n"


def test_logger_state_is_restored_and_later_lines_not_recorded(shown):
    logger = logging.getLogger("romanxr")
    handlers = list(logger.handlers)
    with recording_logs() as lines:
        assert logger.getEffectiveLevel() == logging.INFO
    assert logger.handlers == handlers and logger.level == logging.WARNING and logger.propagate
    logger.info("after the run")
    assert lines == []


def test_nested_recordings_both_see_the_inner_lines(shown):
    logger = logging.getLogger("romanxr")
    with recording_logs() as outer:
        logger.info("one")
        with recording_logs() as inner:
            logger.info("two")
        logger.info("three")
    assert [line.rsplit(" :: ", 1)[1] for line in outer] == ["one", "two", "three"]
    assert [line.rsplit(" :: ", 1)[1] for line in inner] == ["two"]
    assert shown.getvalue() == ""


def test_propagation_to_parent_handlers_is_kept(shown, caplog):
    caplog.set_level(logging.WARNING)
    with recording_logs():
        logging.getLogger("romanxr").warning("seen by the root's handlers")
        logging.getLogger("romanxr").info("not seen there")
    messages = [r.getMessage() for r in caplog.records if r.name == "romanxr"]
    assert messages == ["seen by the root's handlers"]
