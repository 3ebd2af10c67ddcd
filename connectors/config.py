"""The sections of config.yaml that connectors own: `channels:` (one model per kind,
told apart by `kind`) and `supervisor:` (aggregator/config.py composes them)."""
from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from connectors.channels import ApiChannel, PluginChannel, QQChannel, TelegramChannel, WebchatChannel
from storage.config import Section
from storage.durations import PositiveDuration

ChannelConfig = Annotated[Union[WebchatChannel, ApiChannel, TelegramChannel, QQChannel, PluginChannel],
                          Field(discriminator="kind")]


class SupervisorConfig(Section):
    restart_initial: PositiveDuration = 1.0  # before the first restart of a failed connector
    restart_max: PositiveDuration = 60.0  # backoff doubles up to this
    # A reply a platform refuses is retried after delivery_retry_initial, doubling up to
    # delivery_retry_max, and parked (`kefu parked`) after delivery_attempts refusals.
    # While a channel cannot send at all (not connected, its server away) replies wait,
    # retried on the same backoff, however long it takes (connectors/kit/delivery.py).
    delivery_attempts: int = Field(8, ge=1)
    delivery_retry_initial: PositiveDuration = 1.0
    delivery_retry_max: PositiveDuration = 15.0
