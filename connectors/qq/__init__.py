"""QQ through OneBot v11 (NapCat, Lagrange.OneBot, go-cqhttp), for customers and agents.

- `codec`: CQ codes and message segments; a OneBot message as text, files, a quote.
- `transport`: the OneBot WebSockets (reverse: OneBot dials kefu; forward: kefu
  dials OneBot), actions and their answers, the account's online state, and —
  several kefu processes — the connection holder (connectors/kit/lease.py) running
  the actions of processes without a connection (a Redis list as RPC).
- `inbound`: events into the stream — customer messages (their images and files
  fetched and kept by kefu), friend requests.
- `outbound`: a customer's reply (split, paced, resumed part by part), files as
  QQ takes them, what a sent message belongs to (for quotes).
- `connector`: `QQConnector`, the lifecycle.
- `agents`: agents answering from QQ (private chats or a group).
"""
