#!/usr/bin/env python3
"""Concurrent TCP echo server -- peer reproduction of the seeds' socketserver example.

Sources (seed tutorials, see SEEDS.md):
  * 004 "非堵塞型信息交互实例": socketserver.ThreadingTCPServer with a
    BaseRequestHandler subclass defining setup()/handle()/finish(); handle()
    greets the client ("Hello World!"), then loops recv(1024) and breaks on b'exit'.
  * 002: same ThreadingTCPServer pattern; handle() breaks on empty recv
    (`if not data: break`), catches Exception, and replies sendall(data.upper()).
  * 000: the plain iterative server also replies data.upper() with buffer 1024.

Behaviour kept from the seeds:
  * one recv(1024) per message, reply = data.upper() via sendall (no framing,
    so messages > 1024 bytes or coalesced writes are NOT delimited -- as in the seeds);
  * b'exit' (seed 004) or b'quit' (the sentinel of seed 002's clients) ends the
    session without a reply; an empty recv (peer closed) ends it too (seed 002);
  * setup()/finish() exist but do nothing, as the seed teaches.

Changes needed for unattended use:
  * host/port from argv; port 0 allowed; prints exactly one `ready <port>` line
    to stdout (flushed) once listening, then serves until killed;
  * the greeting is OFF by default; `--greeting TEXT` turns it on (seed 004
    sends "Hello World!", its iterative server sends "连接成功");
  * the seeds' diagnostic prints go to stderr (stdout carries only the ready
    line, so an undrained stdout pipe can never block the server).

Usage: threading_echo_server.py HOST PORT [--greeting TEXT]
"""
import argparse
import socketserver
import sys

BUFFER_SIZE = 1024  # seeds: recv(1024)
SENTINELS = (b"exit", b"quit")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class MySocketServer(socketserver.BaseRequestHandler):
    # Seed 004: setup() runs first, then handle(), then finish();
    # setup()/finish() run even if handle() raises.
    greeting = None  # bytes or None; set from argv

    def setup(self):
        pass

    def handle(self):
        conn = self.request
        log("连接成功", self.client_address)
        if self.greeting is not None:
            conn.send(self.greeting)
        while True:
            try:
                data = conn.recv(BUFFER_SIZE)
                if not data:  # seed 002; seed 004 lacks this and spins forever
                    break
                log("客户端收到的消息是:", data)
                if data in SENTINELS:
                    break
                conn.sendall(data.upper())
            except Exception:
                break
        conn.close()

    def finish(self):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--greeting", default=None,
                   help="text sent to each client on connect (seed 004 uses 'Hello World!')")
    a = p.parse_args()
    if a.greeting is not None:
        MySocketServer.greeting = a.greeting.encode("utf-8")

    server = socketserver.ThreadingTCPServer((a.host, a.port), MySocketServer)
    log("正在等待接收数据。。。。。。")
    print(f"ready {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
