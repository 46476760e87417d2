#!/usr/bin/env python3
"""Aggregate decode throughput of a running `glm47 serve`: N concurrent /v1/completions
requests (max_tokens M, ignore_eos, not streamed), each with its own prompt; prints the
generated tokens, the wall time and tokens/s over all of them.
usage: bench/serve_load.py URL N M"""
import json
import sys
import threading
import time
import urllib.request


def one(url, i, m, out):
    body = json.dumps({"prompt": f"request {i}: the quick brown fox", "max_tokens": m, "ignore_eos": True,
                       "temperature": 0}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        out[i] = json.load(r)["usage"]["completion_tokens"]


def main():
    url, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    out = [0] * n
    t0 = time.monotonic()
    th = [threading.Thread(target=one, args=(url, i, m, out)) for i in range(n)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.monotonic() - t0
    print(f"{n} requests x {m} tokens: {sum(out)} generated in {dt:.2f} s = {sum(out) / dt:.1f} tok/s aggregate")


main()
