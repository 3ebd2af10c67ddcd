"""WeCom's callback crypto (the WXBizMsgCrypt scheme).

Every callback is signed and encrypted:

- signature = SHA1 of the concatenation of the sorted strings (token, timestamp, nonce,
  encrypt), hex;
- encrypt = base64 of AES-256-CBC(key, iv = key[:16]) over the PKCS#7-padded (to a
  multiple of 32 bytes) plaintext 16 random bytes + 4-byte big-endian length + message
  + receive id (the corp id), key = base64decode(EncodingAESKey + "=").

URL verification is a GET with msg_signature, timestamp, nonce and an encrypted echostr,
answered with the decrypted echostr; events are POSTed as ``<xml><Encrypt>…</Encrypt></xml>``
with the same query.  Anything forged or broken raises `CallbackRefused` with a reason and
the HTTP status to answer; nothing of it is trusted.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors.wecom.config import aes_key_bytes

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16
MAX_CALLBACK_BYTES = 64 * 1024


class CallbackRefused(Exception):
    """A callback that must not be believed; `reason` says why, `status` what to answer."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.status = status


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypt))).encode()).hexdigest()


def pkcs7_pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes) -> bytes:
    n = data[-1] if data else 0
    if not 1 <= n <= BLOCK or len(data) < n or data[-n:] != bytes([n]) * n:
        raise CallbackRefused("bad padding")
    return data[:-n]


def xml_fields(xml: bytes | str) -> dict[str, str]:
    """The child elements of a flat WeCom XML document as {tag: text}."""
    raw = xml.encode() if isinstance(xml, str) else xml
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise CallbackRefused("XML with a document type is not accepted")
    try:
        root = ET.fromstring(raw)
    except ET.ParseError:
        raise CallbackRefused("malformed XML") from None
    return {child.tag: (child.text or "").strip() for child in root}


def fields_xml(fields: dict[str, str | int]) -> str:
    """A flat WeCom XML document (text in CDATA, numbers bare), as WeCom writes them."""
    out = ["<xml>"]
    for tag, value in fields.items():
        if isinstance(value, int):
            out.append(f"<{tag}>{value}</{tag}>")
        else:
            out.append(f"<{tag}><![CDATA[{value.replace(']]>', ']]]]><![CDATA[>')}]]></{tag}>")
    out.append("</xml>")
    return "".join(out)


class WecomCrypto:
    """Sign, encrypt and decrypt callbacks for one channel (token, EncodingAESKey, corp id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        self.token = token
        self.key = aes_key_bytes(encoding_aes_key)
        self.receive_id = receive_id

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not hmac.compare_digest(self.sign(timestamp, nonce, encrypt), (msg_signature or "").lower()):
            raise CallbackRefused("bad signature", 401)

    def encrypt(self, message: bytes | str, random16: bytes | None = None) -> str:
        body = message.encode() if isinstance(message, str) else message
        prefix = random16 if random16 is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(pkcs7_pad(plain)) + enc.finalize()).decode()

    def decrypt(self, encrypt: str) -> bytes:
        """The message inside `encrypt`; refused unless it was made for our receive id."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRefused("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise CallbackRefused("Encrypt is not whole AES blocks")
        dec = self._cipher().decryptor()
        plain = pkcs7_unpad(dec.update(data) + dec.finalize())
        if len(plain) < 20:
            raise CallbackRefused("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CallbackRefused("bad length")
        if plain[20 + length:] != self.receive_id.encode():
            raise CallbackRefused("wrong receive id", 401)
        return plain[20:20 + length]

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification: the decrypted echostr, to be answered as the body."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr).decode("utf-8", "replace")

    def decrypt_callback(self, msg_signature: str, timestamp: str, nonce: str, body: bytes) -> dict[str, str]:
        """An event callback's fields (e.g. Event, Token, OpenKfId) once it proved genuine."""
        if len(body) > MAX_CALLBACK_BYTES:
            raise CallbackRefused("callback too large", 413)
        encrypt = xml_fields(body).get("Encrypt")
        if not encrypt:
            raise CallbackRefused("no Encrypt element")
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        return xml_fields(self.decrypt(encrypt))

    def encrypt_callback(self, fields: dict[str, str | int], timestamp: str, nonce: str) -> tuple[str, str]:
        """(body, msg_signature) of a callback carrying `fields`, as WeCom sends it."""
        encrypt = self.encrypt(fields_xml(fields))
        body = fields_xml({"ToUserName": self.receive_id, "Encrypt": encrypt, "AgentID": ""})
        return body, self.sign(timestamp, nonce, encrypt)
