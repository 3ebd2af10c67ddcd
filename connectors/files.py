"""HTTP side of storage/attachments.py: taking an upload, serving /files/<id>.

Uploads are the raw file as the request body (``Content-Type`` the file's
type, ``?name=`` its name), the simplest thing for a browser's ``fetch`` and
for curl; the agent API and the web chat both take them this way.
"""
from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from connectors.http import json_error
from storage.attachments import AttachmentStore, human_size, sniff_image


class UploadRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_upload(request: web.Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it passes `limit` bytes, or (400) if empty."""
    if request.content_length is not None and request.content_length > limit:
        raise UploadRefused(413, f"file larger than {human_size(limit)} ({limit} bytes)")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise UploadRefused(413, f"file larger than {human_size(limit)} ({limit} bytes)")
        chunks.append(chunk)
    if not size:
        raise UploadRefused(400, "the request body (the file) is empty")
    return b"".join(chunks)


async def upload(request: web.Request, files: AttachmentStore, limit: int) -> web.Response:
    """201 with the file's description, to name in a message's `attachments`."""
    try:
        data = await read_upload(request, limit)
    except UploadRefused as exc:
        return json_error(exc.status, str(exc))
    att = await files.put(data, request.query.get("name", ""), request.headers.get("Content-Type", ""))
    return web.json_response(att.public(), status=201)


def serve(files: AttachmentStore):
    async def handler(request: web.Request) -> web.StreamResponse:
        att = await files.get(request.match_info["id"])
        if att is None:
            return json_error(404, "no such file (or it has expired)")
        headers = {"Cache-Control": "private, max-age=86400", "Content-Security-Policy": "sandbox",
                   "X-Content-Type-Options": "nosniff", "Access-Control-Allow-Origin": "*"}
        image = sniff_image(att.data)
        disposition = "inline" if image else "attachment"
        headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(att.name)}"
        return web.Response(body=att.data, content_type=image or "application/octet-stream", headers=headers)
    return handler
