"""Logging for the workflow's scripts: everything, warnings and tracebacks included, goes to
the rule's log file and to stderr, with timestamps."""

from __future__ import annotations

import logging
import sys
import warnings


def setup(log_path: str, name: str = "jetimage") -> logging.Logger:
    """Send the ``jetimage`` loggers and uncaught exceptions to ``log_path`` and stderr."""
    handlers: list[logging.Handler] = [
        logging.FileHandler(log_path, mode="w"),
        logging.StreamHandler(sys.stderr),
    ]
    logging.basicConfig(
        level=logging.WARNING,
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("jetimage").setLevel(logging.INFO)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    logger = logging.getLogger(name)

    def excepthook(kind, value, traceback):
        logger.error("failed: %s", value, exc_info=(kind, value, traceback))

    sys.excepthook = excepthook
    return logger
