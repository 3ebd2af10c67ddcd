"""routing/masking.py: which numbers are masked and how (SPEC part 2, "Permissions and masking")."""
from __future__ import annotations

import pytest

from routing.masking import mask_card_keys, mask_conversation, mask_text

CASES = [
    # bank cards: Luhn-valid, 13–19 digits, spaces or dashes allowed
    ("卡号6222021234567890128谢谢", "卡号6222********0128谢谢"),
    ("card 4111111111111111.", "card 4111********1111."),
    ("4111 1111 1111 1111", "4111********1111"),
    ("6222-0212-3456-7890-128", "6222********0128"),
    ("622202 1234567890128", "6222********0128"),
    ("amex 378282246310005", "amex 3782********0005"),
    ("4222222222222", "4222********2222"),  # 13 digits
    # mainland mobiles
    ("手机13812345678", "手机138****5678"),
    ("call 199 0000 1111 now", "call 199****1111 now"),
    ("+86 138-1234-5678", "+86 138****5678"),
    ("+8615912345678", "+86159****5678"),
    # resident ID numbers: valid check digit (and birth date)
    ("身份证11010519491231002X", "身份证110105********002X"),
    ("id 11010519491231002x.", "id 110105********002x."),
    ("440524198001010013", "440524********0013"),  # a county stdnum does not list
    ("110105194913310021", "110105194913310021"),  # right check digit, but month 13
    # left alone
    ("order 1234567890123456", "order 1234567890123456"),  # 16 digits, Luhn-invalid: an order number
    ("订单D20261201123456789012", "订单D20261201123456789012"),  # inside a longer order number
    ("6222021234567890128123", "6222021234567890128123"),  # inside a longer run of digits
    ("x6222021234567890128", "x6222021234567890128"),  # touching letters
    ("D2026-6222021234567890128", "D2026-6222021234567890128"),
    ("QQ 1234567890", "QQ 1234567890"),  # 10 digits
    ("12812345678", "12812345678"),  # 1[3-9] is required of a mobile
    ("138123456789", "138123456789"),  # 12 digits: no mobile
    ("11010519491231002Y", "11010519491231002Y"),
    ("110105194912310021", "110105194912310021"),  # wrong check digit (and Luhn-invalid)
    ("stream 1764612345123-0", "stream 1764612345123-0"),
    ("2026-12-01 10:00:00", "2026-12-01 10:00:00"),
    ("", ""),
]


@pytest.mark.parametrize("text,masked", CASES)
def test_masking_table(text, masked):
    assert mask_text(text) == masked


def test_everything_in_one_message_and_masking_twice_changes_nothing():
    text = "卡 6222021234567890128,手机 13812345678,身份证 11010519491231002X,订单 1234567890123456"
    once = mask_text(text)
    assert once == "卡 6222********0128,手机 138****5678,身份证 110105********002X,订单 1234567890123456"
    assert mask_text(once) == once


def test_card_keys_show_only_their_last_four():
    text = "您的卡密: ABCD-EFGH-1234 和 XYZ9"
    assert mask_card_keys(text, ["ABCD-EFGH-1234", "XYZ9", ""]) == "您的卡密: **********1234 和 ****"


def test_a_conversation_view_is_masked_where_people_show():
    view = {"id": "c1", "customer": {"id": "13812345678", "name": "13812345678", "attributes": {"phone": "13812345678"}},
            "last_message": {"id": "m1", "text": "13812345678"},
            "messages": [{"id": "m1", "text": "13812345678", "attachments": [{"name": "13812345678.png"}]}]}
    masked = mask_conversation(view)
    assert masked["customer"] == {"id": "13812345678", "name": "138****5678", "attributes": {"phone": "138****5678"}}
    assert masked["last_message"]["text"] == masked["messages"][0]["text"] == "138****5678"
    assert masked["messages"][0]["attachments"][0]["name"] == "138****5678.png"
    assert view["messages"][0]["text"] == "13812345678"  # the original is left as it was
