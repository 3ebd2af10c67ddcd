"""Telegram through the Bot API (python-telegram-bot), for customers and agents.

- `codec`: what kefu reads of an update (names, files, other content).
- `transport`: the bot client — every send paced (connectors/kit/pacing.py: about one
  message a second per chat, 30 a second per bot, 20 a minute per group, shared by
  every kefu process), a 429's retry_after waited out.
- `inbound`: long polling under the bot's lease (one poller per bot across
  processes) or the webhook; updates confirmed only once in the stream.
- `outbound`: a customer's reply, split by UTF-16 units, resumed part by part.
- `files`: photos and documents kept in kefu's file store; kefu's files uploaded.
- `connector`: `TelegramConnector`, the lifecycle and the lease.
- `agents`: agents answering from Telegram (private chats or forum topics).
"""
