"""Times the web pages of a running node and weighs them, for BENCHMARKS.md: each page asked for
`--runs` times after a few untimed asks, the time from sending the request to the last byte on
127.0.0.1 (the node's own time, nothing of a browser's), and each page's weight on the wire as a
browser that takes gzip loads it (its HTML, the style sheet and both scripts).

    python3 .ci/web/bench_pages.py URL [--runs 20]
"""

import argparse
import gzip
import json
import re
import statistics
import time
import urllib.error
import urllib.request


def fetch(url, encoding):
    request = urllib.request.Request(url, headers={"Accept-Encoding": encoding})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request) as response:
            body, status, coding = response.read(), response.status, response.headers.get("Content-Encoding", "")
    except urllib.error.HTTPError as error:
        body, status, coding = error.read(), error.code, error.headers.get("Content-Encoding", "")
    return time.perf_counter() - started, body, status, coding


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    base = args.url.rstrip("/")
    api = json.loads(urllib.request.urlopen(f"{base}/v1/commons").read())
    home = urllib.request.urlopen(f"{base}/deposits").read().decode()
    cid = re.search(r'href="/deposits/(baf[a-z0-9]+)"', home)
    pages = ["/", "/deposits", "/deposits?register=oral", "/deposits?language=zz", "/proposals",
             "/propose", "/members", "/disputes", "/log", "/mesh", "/models", "/jobs", "/key",
             "/deposit", "/verify", "/chat"]
    if cid:
        pages.insert(2, f"/deposits/{cid.group(1)}")
    _, first, _, _ = fetch(f"{base}/", "identity")
    assets = re.findall(r'(?:href|src)="(/assets/[^"]+)"', first.decode())
    # app.js imports substrate.js: a page that loads one loads both.
    names = sorted(set(a.split("?")[0] for a in assets) | {"/assets/substrate.js"})
    asset_weight = 0
    for name in names:
        _, body, _, coding = fetch(f"{base}{name}", "gzip")
        assert coding == "gzip", (name, coding)
        asset_weight += len(body)
    print(f"commons: {api.get('name')}; assets on the wire: "
          f"{asset_weight / 1024:.1f} KiB ({', '.join(n.rsplit('/', 1)[1] for n in names)})")
    print(f"{'page':<60} {'status':>6} {'html KiB':>9} {'gzip KiB':>9} {'page+assets':>12} {'p50 ms':>7} {'max ms':>7}")
    for page in pages:
        url = f"{base}{page}"
        for _ in range(3):
            fetch(url, "gzip")
        times = []
        for _ in range(args.runs):
            elapsed, body, status, coding = fetch(url, "gzip")
            times.append(elapsed * 1000)
        assert coding == "gzip", (page, coding)
        raw = gzip.decompress(body)
        print(f"{page[:60]:<60} {status:>6} {len(raw) / 1024:>9.1f} {len(body) / 1024:>9.1f} "
              f"{(len(body) + asset_weight) / 1024:>11.1f}K {statistics.median(times):>7.1f} {max(times):>7.1f}")


if __name__ == "__main__":
    main()
