#!/usr/bin/env python3
"""Broker RSS with N idle connections (issue 3 memory target: 10,000 <= 64 MiB).

Usage: tests/bench/idle_rss.py [--conns N] [--shards S] [--ringmqd PATH]
Starts its own ringmqd on 127.0.0.1 (ephemeral port), opens N connections,
each sends CONNECT and one SUBSCRIBE, then reads the broker's VmRSS from
/proc. Bounded: N <= 50000, every wait has a timeout. Loopback only.
"""
import argparse, os, resource, socket, struct, subprocess, sys, tempfile, time


def varint(v):
    out = b''
    while v >= 0x80:
        out += bytes([(v & 0x7f) | 0x80])
        v >>= 7
    return out + bytes([v])


def fld(n, b):
    return varint(n << 3 | 2) + varint(len(b)) + b


def frame(kind, body):
    f = fld(kind, body)
    return struct.pack('>I', len(f)) + f


def rss_kib(pid):
    for line in open('/proc/%d/status' % pid):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--conns', type=int, default=10000)
    ap.add_argument('--shards', type=int, default=2)
    ap.add_argument('--ringmqd', default='build-bench/broker/ringmqd')
    a = ap.parse_args()
    n = min(a.conns, 50000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    d = tempfile.mkdtemp()
    pf = os.path.join(d, 'port')
    p = subprocess.Popen([a.ringmqd, '--listen', '127.0.0.1:0', '--port-file', pf,
                          '--shards', str(a.shards), '--log-level', 'warn'])
    try:
        for _ in range(500):
            if os.path.exists(pf):
                break
            time.sleep(0.01)
        port = int(open(pf).read())
        base = rss_kib(p.pid)
        socks = []
        for i in range(n):
            s = socket.create_connection(('127.0.0.1', port), timeout=5)
            s.sendall(frame(1, varint(1 << 3) + varint(1) + fld(2, b'idle')) +
                      frame(4, varint(1 << 3) + varint(1) + fld(2, b'idle.%d' % i)))
            socks.append(s)
        time.sleep(1.0)
        rss = rss_kib(p.pid)
        print('ringmqd --shards %d: RSS %.1f MiB at start, %.1f MiB with %d idle connections '
              '(%.0f bytes per connection)' % (a.shards, base / 1024, rss / 1024, n,
                                               (rss - base) * 1024 / n))
        for s in socks:
            s.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


if __name__ == '__main__':
    sys.exit(main())
