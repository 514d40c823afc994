#!/usr/bin/env python3
"""Interactive TCP client -- peer reproduction of the seeds' echo client.

Sources (seed tutorials, see SEEDS.md):
  * 000 socket_client_tcp: loop `msg = input('>>: ').strip()`, skip empty
    input, send(msg.encode('utf-8')), one recv(1024), print the reply.
  * 004 socket_client.py: first recv()s the server's greeting; typing `exit`
    sends it and leaves the loop.
  * 002: the clients leave on `quit`.

Kept: `>>: ` prompt, empty lines skipped, one recv(1024) per reply (no
framing: replies longer than 1024 bytes spill into the next read, as in the seeds),
`exit`/`quit` is sent (so the server closes the session, seed 004) and then the
client exits.

Changes for unattended use: host/port from argv; EOF on stdin ends the client
like `exit`; `--expect-greeting` makes it read and print one greeting after
connecting (use it when the server runs with `--greeting`).

Usage: echo_client.py HOST PORT [--expect-greeting]  (lines on stdin)
"""
import argparse
from socket import AF_INET, SOCK_STREAM, socket

BUFFER_SIZE = 1024


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--expect-greeting", action="store_true",
                   help="read and print one greeting message after connecting (seed 004)")
    a = p.parse_args()
    ip_port = (a.host, a.port)

    tcp_client = socket(AF_INET, SOCK_STREAM)
    tcp_client.connect(ip_port)
    if a.expect_greeting:
        data = tcp_client.recv(BUFFER_SIZE)
        print(data.decode("utf-8", errors="replace"), flush=True)

    while True:
        try:
            msg = input(">>: ").strip()
        except EOFError:
            break
        if not msg:
            continue
        tcp_client.send(msg.encode("utf-8"))
        if msg in ("exit", "quit"):
            break
        print("客户端已经发送消息")
        data = tcp_client.recv(BUFFER_SIZE)
        if not data:  # server closed the connection
            break
        print("收到服务端发来的消息", data.decode("utf-8", errors="replace"), flush=True)

    tcp_client.close()


if __name__ == "__main__":
    main()
