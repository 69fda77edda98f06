"""The serving process's log handler: lines logged on the event loop go out together at the
loop's next iteration; warnings, and lines logged off the loop, at once; nothing is lost."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from tfa_server.logs import LoopBatchedHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(stream: CountingStream) -> tuple[logging.Logger, LoopBatchedHandler]:
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"tfa_server.test_logs.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


async def test_lines_of_one_loop_iteration_are_written_together_at_the_next() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    for number in range(5):
        logger.info("request %d", number)
    assert stream.getvalue() == ""  # not yet: this iteration is still running
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert stream.getvalue() == "".join(f"INFO request {n}\n" for n in range(5))
    assert stream.writes == 1


async def test_a_warning_is_written_at_once_with_what_came_before_it() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    logger.info("first")
    logger.warning("second")
    assert stream.getvalue() == "INFO first\nWARNING second\n"


def test_off_the_loop_a_line_is_written_at_once() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    logger.info("main thread, no loop")
    thread = threading.Thread(target=logger.info, args=("another thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "INFO main thread, no loop\nINFO another thread\n"


def test_lines_left_when_the_loop_ends_are_written_by_flush() -> None:
    stream = CountingStream()
    logger, handler = _logger(stream)

    async def log_and_end() -> None:
        logger.info("last words")

    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_end())
    loop.close()  # its next iteration never comes
    handler.flush()  # as logging.shutdown() does at exit
    assert stream.getvalue() == "INFO last words\n"
