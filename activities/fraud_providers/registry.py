"""The screening service clients a worker builds from `[fraud_detection]`: one per configured
section (not only the active `provider`, so that feedback for payments screened before a switch
still reaches the service that screened them)."""

from __future__ import annotations

from activities.fraud import FraudSettings
from activities.fraud_providers.base import FraudProvider
from activities.fraud_providers.kount.adapter import KountProvider
from activities.fraud_providers.sift.adapter import SiftProvider
from activities.fraud_providers.signifyd.adapter import SignifydProvider


def build_providers(settings: FraudSettings) -> dict[str, FraudProvider]:
    providers: dict[str, FraudProvider] = {}
    if settings.sift is not None:
        providers["sift"] = SiftProvider(
            settings.sift,
            review_threshold=settings.review_threshold,
            block_threshold=settings.block_threshold,
        )
    if settings.signifyd is not None:
        providers["signifyd"] = SignifydProvider(settings.signifyd)
    if settings.kount is not None:
        providers["kount"] = KountProvider(settings.kount)
    return providers


async def close_providers(providers: dict[str, FraudProvider]) -> None:
    for provider in providers.values():
        await provider.aclose()
