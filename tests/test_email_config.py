"""The e-mail channel's settings (connectors/email/config.py): SPEC's keys, kefu's defaults,
and the mistakes an admin would make refused with a reason."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.email.config import EmailChannel

SPEC_EXAMPLE = {
    "kind": "email",
    "address": "Support@Shop.example",
    "imap": {"host": "127.0.0.1", "port": 993, "tls": True, "user": "support", "password": "app-pw",
             "mailbox": "INBOX"},
    "smtp": {"host": "127.0.0.1", "port": 465, "tls": True, "starttls": False, "user": "support",
             "password": "app-pw"},
}


def test_spec_keys_and_defaults():
    ch = EmailChannel.model_validate(SPEC_EXAMPLE)
    assert ch.address == "support@shop.example"
    assert ch.idle_rearm < 29 * 60 and ch.poll_interval == 60 and ch.cut_quotes
    assert ch.imap.password.get_secret_value() == "app-pw" and "app-pw" not in repr(ch)
    assert ch.imap.ssl_context() is not None
    plain = EmailChannel.model_validate({**SPEC_EXAMPLE, "smtp": {"host": "127.0.0.1", "port": 2525, "tls": False}})
    assert plain.smtp.ssl_context() is None and plain.smtp.user is None


@pytest.mark.parametrize("change, problem", [
    ({"address": "support"}, "must be an e-mail address"),
    ({"idle_rearm": 29 * 60}, "less than 1740"),
    ({"smtp": {"host": "h", "tls": True, "starttls": True}}, "tls and starttls exclude each other"),
    ({"imap": {"host": "h", "user": "u"}}, "password"),
    ({"imap_host": "h"}, "Extra inputs are not permitted"),
])
def test_mistakes_are_refused(change, problem):
    with pytest.raises(ValidationError) as exc:
        EmailChannel.model_validate({**SPEC_EXAMPLE, **change})
    assert problem in str(exc.value)
