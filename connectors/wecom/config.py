"""The settings of a `kind: wecom` channel (SPEC "Channel settings that outside tests write")."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.addresses import HttpAddress

AES_KEY_LENGTH = 43  # WeCom's EncodingAESKey: base64 of 32 bytes without the trailing "="


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key an EncodingAESKey stands for; ValueError if it is not one."""
    if len(encoding_aes_key) != AES_KEY_LENGTH or not re.fullmatch(r"[A-Za-z0-9+/]+", encoding_aes_key):
        raise ValueError(f"must be the {AES_KEY_LENGTH}-character EncodingAESKey (letters and digits) "
                         "from the WeCom console")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("is not valid base64") from None
    if len(key) != 32:
        raise ValueError("does not decode to a 32-byte key")
    return key


class WecomChannel(BaseModel):
    """微信客服: customers write to the shop's WeCom customer-service account.

    WeCom calls GET/POST /wecom/<channel>/callback (URL verification, then an encrypted
    "there are new messages" event); kefu pulls the messages with kf/sync_msg and
    answers with kf/send_msg.
    """
    model_config = ConfigDict(extra="forbid")

    kind: Literal["wecom"]
    corp_id: str = Field(pattern=r"^[A-Za-z0-9]{4,64}$")  # 企业ID, e.g. ww0123456789abcdef
    secret: SecretStr  # the 微信客服 Secret (access token for the kf API)
    token: SecretStr  # callback Token: signs every callback
    aes_key: SecretStr  # callback EncodingAESKey (43 characters)
    open_kfid: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # the customer-service account, wk...
    api_base: HttpAddress = "https://qyapi.weixin.qq.com"  # the API server (a test fake locally)
    role: str | None = None  # fixes the role of every conversation from this channel
    sync_limit: int = Field(1000, ge=1, le=1000)  # messages per kf/sync_msg page
    token_margin: float = Field(300.0, ge=0)  # s before expiry an access token is renewed
    request_timeout: float = Field(15.0, gt=0)  # s per API request

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[A-Za-z0-9]{1,32}", v.get_secret_value()):
            raise ValueError("must be the callback Token from the WeCom console (1–32 letters or digits)")
        return v

    @field_validator("aes_key")
    @classmethod
    def _aes_key(cls, v: SecretStr) -> SecretStr:
        aes_key_bytes(v.get_secret_value())
        return v

