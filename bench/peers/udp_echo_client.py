#!/usr/bin/env python3
"""Interactive UDP client -- peer reproduction of the seeds' UDP client.

Source (seed tutorials, see SEEDS.md): 000 socket_client_udp (also 002):
loop `msg = input('>>: ').strip()`, sendto(msg.encode('utf-8'), ip_port),
`data, addr = recvfrom(1024)`, print the reply. Note: unlike the TCP client,
the seed does NOT skip empty input -- an empty datagram is sent and echoed.

Changes for unattended use: host/port from argv; `exit`/`quit` or EOF ends the
client without sending (seed 004 intended this but compared the str to b'exit',
so it never matched). No timeout, as in the seed: a lost datagram blocks forever.

Usage: udp_echo_client.py HOST PORT  (lines on stdin)
"""
import sys
from socket import AF_INET, SOCK_DGRAM, socket

BUFFER_SIZE = 1024


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: udp_echo_client.py HOST PORT")
    ip_port = (sys.argv[1], int(sys.argv[2]))

    udp_client = socket(AF_INET, SOCK_DGRAM)  # 数据报
    while True:
        try:
            msg = input(">>: ").strip()
        except EOFError:
            break
        if msg in ("exit", "quit"):
            break
        udp_client.sendto(msg.encode("utf-8"), ip_port)
        data, addr = udp_client.recvfrom(BUFFER_SIZE)
        print("收到服务端发来的消息", data, flush=True)
    udp_client.close()


if __name__ == "__main__":
    main()
