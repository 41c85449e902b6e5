"""Reading a request body once, with a size cap, and replaying it to the app untouched."""

from __future__ import annotations

from starlette.types import Message, Receive

from .errors import BodyTooLargeError

__all__ = ["read_body", "replay"]


async def read_body(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The whole body, or BodyTooLargeError past `limit` bytes.

    Returns the body and, if the client went away, the `http.disconnect` message to replay.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def replay(body: bytes, disconnect: Message | None, receive: Receive) -> Receive:
    """A `receive` that yields the buffered body once, then defers to the real one."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnect is not None:
                return disconnect
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
