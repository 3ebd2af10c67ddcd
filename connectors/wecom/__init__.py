"""WeChat customers through the WeCom customer-service API (微信客服).

The protocol layer the WeCom connector is a thin shell over, free of kefu's storage:
``config`` (the channel's settings), ``crypto`` (callback signature and AES),
``api`` (access token, sync_msg, send_msg, media, session state) and ``rules`` (the
platform's 48-hour / 5-message reply window).
"""
