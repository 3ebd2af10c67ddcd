"""E-mail as a customer channel: the protocol layer the e-mail connector is a thin shell over.

`config` the channel's settings; `parse` inbound MIME → `InboundMail` (pure);
`compose` kefu's reply → `EmailMessage` (pure); `imap` the reader (IDLE or
polling, UID position kept by the caller); `smtp` the sender (failures
classified retryable or permanent).  No Redis and no connector state here.
"""
