"""make demo, on the real node: read the sample's shards through kubectl port-forward
(127.0.0.1), then a reserve, a write and a read on ``a``, with the project's client."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading

from shard_operator.client import ShardClient


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True,
                          check=True).stdout


def forward(namespace: str, pod: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(["kubectl", "-n", namespace, "port-forward", "--address=127.0.0.1",
                             f"pod/{pod}", ":8080"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    # kubectl prints a line per connection: keep draining, or a full pipe stalls it
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.terminate()
        sys.exit(f"demo: port-forward to {pod} failed: {line!r}")
    return proc, int(match.group(1))


async def main(namespace: str, node_id: str) -> None:
    shards = json.loads(kubectl("-n", namespace, "get", "shards", "-l",
                                f"shards.anoma.net/node-id={node_id}", "-o", "json"))["items"]
    pods = {tuple(s["spec"]["key"]): s["metadata"]["name"] for s in shards}
    forwards = {key: forward(namespace, pods[(key,)]) for key in ("a", "c")}
    ports = {pods[(key,)]: port for key, (_, port) in forwards.items()}
    try:
        async with ShardClient(lambda service: ("127.0.0.1", ports[service])) as client:
            for key in ("a", "c"):
                result = await client.read(pods[(key,)], [key], 1)
                print(f"  read {key} at height 1 from pod {pods[(key,)]}: {result.value}")
            a = pods[("a",)]
            await client.reserve(a, ["a"], 7)
            print("  reserve a at height 7: ok")
            print(f"  write a=\"hello\" at 7: {await client.write(a, ['a'], 7, 'hello')}")
            print(f"  advance a's watermark to 8: {await client.advance_watermark(a, ['a'], 8)}")
            print(f"  read a at height 8: {(await client.read(a, ['a'], 8)).value}")
    finally:
        for proc, _ in forwards.values():
            proc.terminate()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
