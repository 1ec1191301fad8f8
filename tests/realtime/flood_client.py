"""A raw /ws client that floods the server with tiny frames for a few seconds while it drains
what the server sends (a separate process, so that it never shares the server's event loop).

    python flood_client.py HOST PORT COOKIE ping|binary SECONDS
"""

from __future__ import annotations

import socket
import sys
import threading
import time


def main() -> None:
    host, port, cookie, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    seconds = float(sys.argv[5])
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                 + f"Cookie: {cookie}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert b" 101 " in head, head[:100]

    def drain() -> None:
        try:
            while sock.recv(1 << 20):
                pass
        except OSError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    frame = bytes((0x89 if kind == "ping" else 0x82, 0x80)) + b"\0\0\0\0"  # empty, masked
    chunk = frame * ((1 << 20) // len(frame))
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            sock.sendall(chunk)
    except OSError:
        pass
    sock.close()


if __name__ == "__main__":
    main()
