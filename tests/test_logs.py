"""Log lines carry no personal data: structlog events (nested values too) and the standard
library's records (the Temporal SDK's, SQLAlchemy's) are masked before they are written."""

from __future__ import annotations

import logging

import pytest

from engine.logs import configure_logging, get_logger, mask_text

ID, PHONE, CARD, MAIL = "110101199001011237", "13912345678", "6222021234567890123", "zhao@example.com"


def test_mask_text_catches_numbers_inside_chinese_text() -> None:
    line = f"身份证{ID}，电话{PHONE}，银行卡{CARD}，邮箱{MAIL}，案件XF-20261201-3F2A9C1B"
    masked = mask_text(line)
    assert not [v for v in (ID, PHONE, CARD, MAIL) if v in masked]
    assert "XF-20261201-3F2A9C1B" in masked  # case numbers are not personal data


def test_structlog_and_stdlib_lines_are_masked(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging(json=True)
    get_logger(component="test").info("intake", note=f"电话{PHONE}", people=[{"id": ID}], detail={"card": CARD})
    logging.getLogger("temporalio.activity").warning("Completing activity as failed (%s)", f"id={ID}")
    try:
        raise ValueError(f"row holds {PHONE}")
    except ValueError:
        logging.getLogger("sqlalchemy.engine").error("statement failed", exc_info=True)
    err = capsys.readouterr().err
    assert "intake" in err and not [v for v in (ID, PHONE, CARD) if v in err], err
    stdlib = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "Completing activity as failed" in stdlib and "statement failed" in stdlib and "ValueError" in stdlib
    assert not [v for v in (ID, PHONE) if v in stdlib], stdlib
