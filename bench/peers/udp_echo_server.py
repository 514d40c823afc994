#!/usr/bin/env python3
"""UDP upper-case echo server -- peer reproduction of the seeds' UDP server.

Sources (seed tutorials, see SEEDS.md): 000 socket_server_udp and 002's UDP server:
bind, loop `data, addr = recvfrom(1024)`, print, `sendto(data.upper(), addr)`.
(002's copy has a typo `udp_sever.recvfrom` that raises NameError on the first
datagram; 004's UDP server only prints and never replies.)

Kept: recvfrom(1024) (longer datagrams are truncated by the kernel), reply
data.upper() to the sender, no connection state.
Changes for unattended use: host/port from argv, port 0 allowed, one
`ready <port>` line on stdout (flushed), the seed's per-datagram print goes to
stderr, runs until killed.

Usage: udp_echo_server.py HOST PORT
"""
import sys
from socket import AF_INET, SOCK_DGRAM, socket

BUFFER_SIZE = 1024


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: udp_echo_server.py HOST PORT")
    ip_port = (sys.argv[1], int(sys.argv[2]))

    udp_server = socket(AF_INET, SOCK_DGRAM)  # 数据报
    udp_server.bind(ip_port)
    print(f"ready {udp_server.getsockname()[1]}", flush=True)
    try:
        while True:
            data, addr = udp_server.recvfrom(BUFFER_SIZE)
            print("收到来自{}的消息:{}".format(addr, data), file=sys.stderr, flush=True)
            udp_server.sendto(data.upper(), addr)
    except KeyboardInterrupt:
        pass
    finally:
        udp_server.close()


if __name__ == "__main__":
    main()
