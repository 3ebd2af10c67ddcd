"""One module (or folder) per channel kind; `connector_class` maps config.yaml's `kind` to it.
What every channel shares is the toolkit in connectors/kit/."""
from __future__ import annotations

import importlib

from connectors.base import Connector


def connector_class(config) -> type[Connector]:
    kind = config.kind
    if kind == "webchat":
        from connectors.webchat import WebchatConnector
        return WebchatConnector
    if kind == "api":
        from connectors.api import ApiConnector
        return ApiConnector
    if kind == "telegram":
        from connectors.telegram.connector import TelegramConnector
        return TelegramConnector
    if kind == "qq":
        from connectors.qq.connector import QQConnector
        return QQConnector
    if kind == "plugin":
        module, _, name = config.class_.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            raise TypeError(f"{config.class_} is not a Connector")
        return cls
    raise ValueError(f"unknown channel kind {kind!r}")
