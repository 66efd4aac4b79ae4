"""The resource table and generic verbs of :mod:`shard_operator.kube`, against a small
HTTP server on loopback standing in for the API server: the URL, method, query and
content type each verb sends, the answers and errors it returns, the watch stream, and
the ``(kind, verb, code)`` it reports to its recorder."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from shard_operator import kube as kube_module
from shard_operator.kube import (
    CONFIG_MAP,
    EVENT,
    LEASE,
    NETWORK_POLICY,
    POD,
    SHARD,
    SHARDSET,
    STORAGE_CLASS,
    Api,
    ApiError,
    Kube,
)
from shard_operator.kubeconfig import KubeConfig, Secret, StaticAuth


@pytest.mark.parametrize(("resource", "namespace", "name", "sub", "path"), [
    (POD, "ns", None, None, "/api/v1/namespaces/ns/pods"),
    (POD, None, None, None, "/api/v1/pods"),
    (CONFIG_MAP, "ns", "shard-key-map-n", None, "/api/v1/namespaces/ns/configmaps/shard-key-map-n"),
    (SHARD, "ns", "n-abc", "status",
     "/apis/shards.anoma.net/v1alpha1/namespaces/ns/shards/n-abc/status"),
    (SHARDSET, None, None, None, "/apis/shards.anoma.net/v1alpha1/shardsets"),
    (EVENT, "ns", None, None, "/apis/events.k8s.io/v1/namespaces/ns/events"),
    (NETWORK_POLICY, "ns", "shard-clients-n", None,
     "/apis/networking.k8s.io/v1/namespaces/ns/networkpolicies/shard-clients-n"),
    (STORAGE_CLASS, "ignored", "fast", None, "/apis/storage.k8s.io/v1/storageclasses/fast"),
    (LEASE, "ops", "leader", None,
     "/apis/coordination.k8s.io/v1/namespaces/ops/leases/leader"),
])
def test_resource_paths(resource, namespace, name, sub, path) -> None:
    assert resource.path(namespace, name, sub) == path


def test_resource_table_names_every_kind_once() -> None:
    table = kube_module.RESOURCES
    assert all(kind == resource.kind for kind, resource in table.items())
    assert [r.kind for r in kube_module.WATCHED] == [
        "ShardSet", "Shard", "Pod", "Service", "ConfigMap", "PersistentVolumeClaim",
        "PodDisruptionBudget", "NetworkPolicy"]
    assert POD.api_version == "v1" and SHARD.api_version == "shards.anoma.net/v1alpha1"
    assert POD.patch_type.startswith("application/strategic")
    assert SHARD.patch_type == "application/merge-patch+json"


class FakeApiServer:
    """Answers what a test queues by (method, path) and records each request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        # (method, path) -> (status, answer), or a list of them answered in turn
        self.answers: dict[tuple[str, str], Any] = {}
        self.watch_lines: list[bytes] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.requests.append({"method": request.method, "path": request.path,
                              "query": dict(request.query),
                              "content_type": request.headers.get("Content-Type"),
                              "authorization": request.headers.get("Authorization"),
                              "body": json.loads(body) if body else None})
        if request.query.get("watch") == "true":
            response = web.StreamResponse()
            await response.prepare(request)
            for line in self.watch_lines:
                await response.write(line)
            return response
        queued = self.answers.get((request.method, request.path), (200, {}))
        status, answer = queued.pop(0) if isinstance(queued, list) else queued
        return web.json_response(answer, status=status)


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeApiServer, Kube, list[tuple[str, str, str]]]]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    config = KubeConfig(f"http://127.0.0.1:{port}", StaticAuth(Secret(token="t0k")))
    recorded: list[tuple[str, str, str]] = []
    kube = Kube(Api(config, pool_size=4),
                record=lambda kind, verb, code, seconds: recorded.append((kind, verb, code)))
    try:
        yield fake, kube, recorded
    finally:
        await kube.close()
        await runner.cleanup()


async def test_verbs_send_the_right_requests_and_record_kind_and_verb(server) -> None:
    fake, kube, recorded = server
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}
    fake.answers[("POST", "/api/v1/namespaces/ns/pods")] = (201, {**pod, "x": 1})
    assert (await kube.create(pod))["x"] == 1
    await kube.create(pod, dry_run=True)
    await kube.patch("Pod", "ns", "p", {"metadata": {"labels": {"a": "b"}}})
    await kube.patch("Shard", "ns", "s", {"spec": {}})
    await kube.patch_status("ShardSet", "ns", "set", {"readyShards": 1})
    await kube.replace({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "m", "namespace": "ns"}, "data": {}})
    await kube.delete("Shard", "ns", "s", uid="u1")
    await kube.get("ConfigMap", "ns", "m")
    await kube.list("ShardSet", "ns", field_selector="spec.nodeId=node-1")
    sent = [(r["method"], r["path"], r["query"], r["content_type"]) for r in fake.requests]
    manager = {"fieldManager": "shard-operator"}
    assert sent == [
        ("POST", "/api/v1/namespaces/ns/pods", manager, "application/json"),
        ("POST", "/api/v1/namespaces/ns/pods", {**manager, "dryRun": "All"}, "application/json"),
        ("PATCH", "/api/v1/namespaces/ns/pods/p", manager,
         "application/strategic-merge-patch+json"),
        ("PATCH", "/apis/shards.anoma.net/v1alpha1/namespaces/ns/shards/s", manager,
         "application/merge-patch+json"),
        ("PATCH", "/apis/shards.anoma.net/v1alpha1/namespaces/ns/shardsets/set/status",
         manager, "application/merge-patch+json"),
        ("PUT", "/api/v1/namespaces/ns/configmaps/m", manager, "application/json"),
        ("DELETE", "/apis/shards.anoma.net/v1alpha1/namespaces/ns/shards/s", {},
         "application/json"),
        ("GET", "/api/v1/namespaces/ns/configmaps/m", {}, "application/json"),
        ("GET", "/apis/shards.anoma.net/v1alpha1/namespaces/ns/shardsets",
         {"fieldSelector": "spec.nodeId=node-1"}, "application/json"),
    ]
    assert {r["authorization"] for r in fake.requests} == {"Bearer t0k"}
    assert fake.requests[4]["body"] == {"status": {"readyShards": 1}}
    assert fake.requests[6]["body"] == {"preconditions": {"uid": "u1"}}
    assert recorded == [("Pod", "create", "2xx"), ("Pod", "create", "2xx"),
                        ("Pod", "patch", "2xx"), ("Shard", "patch", "2xx"),
                        ("ShardSet", "patch-status", "2xx"), ("ConfigMap", "replace", "2xx"),
                        ("Shard", "delete", "2xx"), ("ConfigMap", "get", "2xx"),
                        ("ShardSet", "list", "2xx")]


async def test_errors_carry_the_api_servers_status_and_message(server) -> None:
    fake, kube, recorded = server
    fake.answers[("GET", "/api/v1/namespaces/ns/configmaps/m")] = (
        404, {"kind": "Status", "code": 404, "reason": "NotFound", "message": "not there"})
    with pytest.raises(ApiError) as caught:
        await kube.get("ConfigMap", "ns", "m")
    assert (caught.value.status, caught.value.reason, caught.value.message) == (
        404, "NotFound", "not there") and caught.value.not_found
    assert await kube.exists("ConfigMap", "ns", "m") is False
    fake.answers[("POST", "/api/v1/namespaces/ns/pods")] = (409, {"reason": "AlreadyExists"})
    with pytest.raises(ApiError) as caught:
        await kube.create({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}})
    assert caught.value.conflict
    assert recorded[-1] == ("Pod", "create", "4xx")
    with pytest.raises(ValueError, match="no resource 'Deployment'"):
        await kube.get("Deployment", "ns", "d")


async def test_list_names_follows_continue_tokens(server) -> None:
    fake, kube, _ = server
    fake.answers[("GET", "/api/v1/pods")] = [
        (200, {"items": [{"metadata": {"namespace": "a", "name": "p1"}}],
               "metadata": {"continue": "t1"}}),
        (200, {"items": [{"metadata": {"namespace": "b", "name": "p2"}}], "metadata": {}}),
    ]
    assert await kube.list_names("Pod", None, page=1) == [("a", "p1"), ("b", "p2")]
    assert [r["query"] for r in fake.requests] == [{"limit": "1"},
                                                   {"limit": "1", "continue": "t1"}]


async def test_watch_yields_events_skips_bookmarks_and_raises_on_error(server) -> None:
    fake, kube, recorded = server
    big = {"metadata": {"name": "m"}, "data": {"k": "x" * 300_000}}  # over aiohttp's 128 KiB
    fake.watch_lines = [
        json.dumps({"type": "ADDED", "object": {"metadata": {"name": "m"}}}).encode() + b"\n",
        json.dumps({"type": "BOOKMARK", "object": {"metadata": {}}}).encode() + b"\n",
        json.dumps({"type": "MODIFIED", "object": big}).encode() + b"\n",
        json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410,
                                                "reason": "Expired", "message": "too old"}}
                   ).encode() + b"\n",
    ]
    seen = []
    with pytest.raises(ApiError) as caught:
        async for kind, obj in kube.watch("ConfigMap", "ns", field_selector="metadata.name=m",
                                          resource_version="7", timeout_seconds=30):
            seen.append((kind, len(obj.get("data", {}).get("k", ""))))
    assert seen == [("ADDED", 0), ("MODIFIED", 300_000)]
    assert caught.value.status == 410
    assert fake.requests[0]["query"] == {"watch": "true", "fieldSelector": "metadata.name=m",
                                         "resourceVersion": "7", "timeoutSeconds": "30"}
    assert recorded == [("ConfigMap", "watch", "4xx")]
    fake.watch_lines = fake.watch_lines[:1]  # the server ends the stream: so does the watch
    assert [kind async for kind, _ in kube.watch("Shard", "ns")] == ["ADDED"]
    assert recorded[-1] == ("Shard", "watch", "2xx")


class Rotating(StaticAuth):
    """A credential that changes each time it is loaded (an exec plugin, say)."""

    def __init__(self) -> None:
        super().__init__(Secret())
        self.loads = 0

    def fresh(self) -> bool:
        return True  # until invalidated

    def load(self) -> Secret:
        self.loads += 1
        return Secret(token=f"gen-{self.loads}")


async def test_credentials_are_taken_per_request_and_reloaded_after_a_401(server) -> None:
    fake, kube, _ = server
    auth = Rotating()
    kube.api.config.auth = auth
    kube.api.config.invalidate()
    await kube.get("ConfigMap", "ns", "a")
    await kube.get("ConfigMap", "ns", "b")  # cached: same credential
    fake.answers[("GET", "/api/v1/namespaces/ns/configmaps/c")] = (
        401, {"kind": "Status", "code": 401, "reason": "Unauthorized", "message": "expired"})
    with pytest.raises(ApiError) as caught:
        await kube.get("ConfigMap", "ns", "c")
    assert caught.value.status == 401
    await kube.get("ConfigMap", "ns", "d")  # loaded again after the refusal
    assert [r["authorization"] for r in fake.requests] == [
        "Bearer gen-1", "Bearer gen-1", "Bearer gen-1", "Bearer gen-2"]
