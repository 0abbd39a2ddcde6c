"""`make bench`: intake throughput, end-to-end drain time and the shared rate limit.

Each figure comes with a baseline measured in the same run on the same machine, so the ratio
means something even on a shared, noisy host:
  - intake: POST /hooks/s3 (verify, parse, route, record, enqueue) against GET /healthz;
  - drain: N notifications through relay + worker against N direct client calls to the sandbox;
  - rate limit: the API request rate the workers reach against the configured RELAY_API_RATE.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests

from relay.events import EventStore
from relay.segments import SegmentsClient
from relay.stack import (
    SANDBOX_KEY,
    Stack,
    ensure_demo_datasets,
    free_port,
    gunicorn_args,
    start_embedded_redis,
    start_sandbox,
    wait_until,
    worker_args,
)

RESULTS = Path(__file__).parent / "results"
BODY = (Path(__file__).parent.parent / "relay" / "examples" / "s3_put.json").read_text()


def s3_body(i: int) -> str:
    doc = json.loads(BODY)
    obj = doc["Records"][0]["s3"]["object"]
    obj["key"], obj["versionId"] = f"bench/{i:06d}.jpg", f"v{i}"
    return json.dumps(doc)


def timed_requests(call, count: int, concurrency: int) -> dict:
    """Run `call(i)` count times on `concurrency` threads; latency percentiles and throughput."""
    latencies: list[float] = []

    def one(i: int) -> None:
        start = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": count,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--api-rate", type=float, default=50.0)
    args = parser.parse_args()

    data_dir = Path(os.environ.get("RELAY_DATA_DIR", "var/bench"))
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(data_dir)
    env = {
        **os.environ,
        "RELAY_S3_TOKEN": "bench-token",
        "RELAY_MINIO_TOKEN": "x",
        "RELAY_GCS_TOKEN": "x",
        "RELAY_AZURE_TOKEN": "x",
        "RELAY_PREDICTIONS_SECRET": "whsec_YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2g=",
        "RELAY_REPLICATE_SECRET": "whsec_YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2g=",
        "RELAY_API_RATE": str(args.api_rate),
        "RELAY_API_BURST": "5",
        "RELAY_LOG_LEVEL": "WARNING",
    }
    env.pop("RELAY_CONFIG", None)
    report: dict = {"config": vars(args)}
    try:
        env["RELAY_REDIS_URL"] = start_embedded_redis(stack, env)
        env["RELAY_SANDBOX_PORT"] = str(free_port())
        env["RELAY_SEGMENTS_API_URL"] = start_sandbox(stack, env)
        env["RELAY_SEGMENTS_API_KEY"] = SANDBOX_KEY
        ensure_demo_datasets(env["RELAY_SEGMENTS_API_URL"], SANDBOX_KEY)
        port = str(free_port())
        relay_url = f"http://127.0.0.1:{port}"
        stack.start("relay", gunicorn_args(port, 2), env)
        wait_until(lambda: requests.get(f"{relay_url}/readyz", timeout=1).ok, "the relay")
        session = requests.Session()
        headers = {"X-Relay-Token": "bench-token", "Content-Type": "application/json"}

        # 1. Intake, with no worker running so only the request path is measured.
        report["baseline_healthz"] = timed_requests(
            lambda i: session.get(f"{relay_url}/healthz", timeout=10),
            args.requests,
            args.concurrency,
        )
        report["intake_s3"] = timed_requests(
            lambda i: session.post(
                f"{relay_url}/hooks/s3", data=s3_body(i), headers=headers, timeout=10
            ),
            args.requests,
            args.concurrency,
        )
        conn = redis.Redis.from_url(env["RELAY_REDIS_URL"])
        store = EventStore(conn, ttl_seconds=3600, stale_seconds=600)
        # Start the drain from empty: forget the intake run's events and their queued tasks.
        for key in conn.scan_iter("relay:*"):
            conn.delete(key)
        conn.delete("relay")  # the Celery queue (a Redis list named after it)

        # 2. Drain: N samples through relay + workers, against N direct calls to the sandbox.
        client = SegmentsClient(env["RELAY_SEGMENTS_API_URL"], SANDBOX_KEY)
        start = time.perf_counter()
        for i in range(args.samples):
            client.create_sample(
                "demo/images", f"direct/{i:06d}.jpg", {"image": {"url": f"https://x/{i}.jpg"}}
            )
        direct = time.perf_counter() - start
        report["baseline_direct_api"] = {
            "samples": args.samples,
            "seconds": round(direct, 3),
            "per_second": round(args.samples / direct, 1),
        }
        stack.start("worker", worker_args(concurrency=4), env)
        requests.post(f"{env['RELAY_SEGMENTS_API_URL']}/_sandbox/reset", timeout=10)
        ensure_demo_datasets(env["RELAY_SEGMENTS_API_URL"], SANDBOX_KEY)
        start = time.perf_counter()
        for i in range(args.samples):
            session.post(
                f"{relay_url}/hooks/s3", data=s3_body(100_000 + i), headers=headers, timeout=10
            )
        wait_until(lambda: store.counts()["succeeded"] >= args.samples, "the drain", timeout=600)
        drained = time.perf_counter() - start
        stats = requests.get(f"{env['RELAY_SEGMENTS_API_URL']}/_sandbox/stats", timeout=10).json()
        creates = sum(
            r["count"]
            for r in stats["requests"]
            if r["method"] == "POST" and r["route"].endswith("/samples/")
        )
        report["relay_drain"] = {
            "samples": args.samples,
            "seconds": round(drained, 3),
            "per_second": round(args.samples / drained, 1),
            "api_create_calls": creates,
            "configured_api_rate": args.api_rate,
        }
    finally:
        stack.stop()

    print_report(report, args.api_rate)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")
    return 0


def print_report(report: dict, api_rate: float) -> None:
    base, intake = report["baseline_healthz"], report["intake_s3"]
    drain, direct = report["relay_drain"], report["baseline_direct_api"]
    rows = [
        ("baseline GET /healthz", base),
        ("POST /hooks/s3 (record+enqueue)", intake),
        ("baseline direct create_sample", direct),
        ("relay drain (rate-limited)", drain),
    ]
    print(f"{'measure':<34}{'per second':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for name, row in rows:
        p50, p99 = row.get("p50_ms", ""), row.get("p99_ms", "")
        print(f"{name:<34}{row['per_second']:>12}{p50:>10}{p99:>10}")
    print(f"intake costs {base['per_second'] / intake['per_second']:.2f}x a health check")
    share = drain["per_second"] / api_rate
    print(
        f"drain reached {share:.0%} of RELAY_API_RATE={api_rate:g} "
        f"({drain['api_create_calls']} create calls for {drain['samples']} samples)"
    )


if __name__ == "__main__":
    sys.exit(main())
