"""What the mainland China wallets (AliPay, WeChat Pay) share: both read and write their times in
Beijing time, UTC+8 all year round (China keeps no daylight saving time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

CHINA_TIME = timezone(timedelta(hours=8))


def in_china_time(moment: datetime) -> datetime:
    """`moment` on Beijing's clock; a naive datetime is taken as UTC, like every time durapay keeps."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA_TIME)
