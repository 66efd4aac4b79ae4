"""``python -m bench.clientmem``: what each Kubernetes client choice costs in memory.

For each candidate a fresh interpreter imports it, loads a kubeconfig and sends one GET
of a ConfigMap (over TLS, a bearer token, the kubeconfig's CA data) to a stand-in API
server on 127.0.0.1, then reports its peak RSS (``VmHWM`` of /proc/self/status), its
RSS, the number of modules imported and the seconds taken. Each candidate runs twice:
alone, and after ``import kopf`` (what the operator carries: kopf imports the generated
models of ``kubernetes`` or ``kubernetes_asyncio`` whenever either is installed, see
kopf/_cogs/helpers/thirdparty.py).

The candidates not in the project's own environment are installed by hand in a
throwaway venv (``--venv``, with kopf, aiohttp and PyYAML at the project's pins) and
``pip install --target`` directories beside it (``kasync``, ``kubernetes``,
``lightkube``), put on ``sys.path`` of their candidate only; nothing of this goes into
pyproject.toml. ``--setup`` creates them.

Writes ``bench/results/clientmem.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = Path("/tmp/clientmem")
PATH = "/api/v1/namespaces/default/configmaps/probe"
TOKEN = "clientmem-token"

PINS = ["kopf==1.45.2", "aiohttp==3.14.5", "pyyaml==6.0.3"]
EXTRAS = {"kasync": ["kubernetes-asyncio==36.1.0"], "kubernetes": ["kubernetes"],
          "lightkube": ["lightkube"]}

# name -> (extra directory under the root or None, the body of `async def probe(kc)`
# returning the ConfigMap's data). `kc` is the kubeconfig's path.
CANDIDATES: dict[str, tuple[str | None, str]] = {
    "kubernetes_asyncio ApiClient (today)": ("kasync", """
    from kubernetes_asyncio import client, config
    configuration = client.Configuration()
    await config.load_kube_config(config_file=kc, client_configuration=configuration)
    configuration.connection_pool_maxsize = 4
    async with client.ApiClient(configuration) as api:
        response = await api.call_api(PATH, "GET", header_params={"Accept": "application/json"},
                                      auth_settings=["BearerToken"], _preload_content=False)
        async with response:
            return json.loads(await response.text())["data"]
"""),
    "kubernetes_asyncio dynamic client": ("kasync", """
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.dynamic import DynamicClient
    configuration = client.Configuration()
    await config.load_kube_config(config_file=kc, client_configuration=configuration)
    async with client.ApiClient(configuration) as api:
        dynamic = await DynamicClient(api, cache_file=os.path.join(
            os.environ["CLIENTMEM_TMP"], "discovery.json"))
        resource = await dynamic.resources.get(api_version="v1", kind="ConfigMap")
        found = await dynamic.get(resource, name="probe", namespace="default")
        return dict(found.data)
"""),
    "kubernetes (official, sync) ApiClient": ("kubernetes", """
    from kubernetes import client, config
    configuration = client.Configuration()
    config.load_kube_config(config_file=kc, client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        method, url, headers, _, _ = api.param_serialize(
            "GET", PATH, header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        response = api.call_api(method, url, header_params=headers)
        return json.loads(response.read())["data"]
"""),
    "lightkube AsyncClient": ("lightkube", """
    from lightkube import AsyncClient, KubeConfig
    from lightkube.resources.core_v1 import ConfigMap
    client = AsyncClient(KubeConfig.from_file(kc))
    try:
        return (await client.get(ConfigMap, "probe", namespace="default")).data
    finally:
        await client.close()
"""),
    "aiohttp + shard_operator.kubeconfig": (None, """
    import aiohttp
    from shard_operator.kubeconfig import load
    settings = load(kc)
    headers, context = await settings.request_settings()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
        async with session.get(settings.server + PATH, ssl=context,
                               headers={**headers, "Accept": "application/json"}) as response:
            return json.loads(await response.text())["data"]
"""),
    "no client library (with kopf: kopf alone)": (None, """
    return {"ok": "1"}
"""),
}

CHILD = """
import asyncio, json, os, sys, time
started = time.monotonic()
sys.path[:0] = json.loads(os.environ["CLIENTMEM_PATH"])
if os.environ.get("CLIENTMEM_KOPF") == "1":
    import kopf
PATH = {path!r}

async def probe(kc):
{body}

data = asyncio.run(probe(os.environ["CLIENTMEM_KUBECONFIG"]))
assert data == {{"ok": "1"}}, data
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
kb = lambda key: int(status[key].split()[0])
print(json.dumps({{"peak_mb": kb("VmHWM") / 1024, "rss_mb": kb("VmRSS") / 1024,
                  "modules": len(sys.modules), "seconds": time.monotonic() - started,
                  "k8s_libs": sorted({{m.split(".")[0] for m in sys.modules}}
                                     & {{"kubernetes", "kubernetes_asyncio", "lightkube"}})}}))
"""

DISCOVERY = {
    "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0"},
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "configmaps", "singularName": "configmap", "namespaced": True,
         "kind": "ConfigMap", "verbs": ["get", "list"]}]},
}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "probe", "namespace": "default",
                           "resourceVersion": "1", "uid": "u"},
              "data": {"ok": "1"}}


def setup(root: Path) -> None:
    """The throwaway venv and target directories (installs from PyPI)."""
    venv = root / "venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PINS], check=True)
    for name, packages in EXTRAS.items():
        if not (root / name).is_dir():
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--target",
                            str(root / name), *packages], check=True)


def certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def kubeconfig(port: int, cert: Path) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "probe",
            "clusters": [{"name": "probe", "cluster": {
                "server": f"https://127.0.0.1:{port}",
                "certificate-authority-data": base64.b64encode(cert.read_bytes()).decode()}}],
            "users": [{"name": "probe", "user": {"token": TOKEN}}],
            "contexts": [{"name": "probe", "context": {"cluster": "probe", "user": "probe"}}]}


async def serve(cert: Path, key: Path) -> tuple[web.AppRunner, int]:
    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        if request.path == PATH:
            return web.json_response(CONFIG_MAP)
        if request.path in DISCOVERY:
            return web.json_response(DISCOVERY[request.path])
        return web.json_response({"kind": "Status", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def measure(python: Path, path: list[str], body: str, with_kopf: bool,
                  kubeconfig_path: Path, tmp: Path) -> dict[str, Any]:
    code = CHILD.format(path=PATH, body=body.strip("\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "KUBE"))}
    env.update(CLIENTMEM_PATH=json.dumps(path), CLIENTMEM_KOPF="1" if with_kopf else "0",
               CLIENTMEM_KUBECONFIG=str(kubeconfig_path), CLIENTMEM_TMP=str(tmp),
               HOME=str(tmp))
    process = await asyncio.create_subprocess_exec(
        str(python), "-I", "-c", code, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"exit {process.returncode}: {err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def run(root: Path, runs: int) -> dict[str, Any]:
    python = root / "venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="clientmem-") as directory:
        tmp = Path(directory)
        cert, key = certificate(tmp)
        runner, port = await serve(cert, key)
        config_path = tmp / "kubeconfig"
        config_path.write_text(json.dumps(kubeconfig(port, cert)))
        figures: dict[str, Any] = {}
        try:
            for name, (extra, body) in CANDIDATES.items():
                path = [str(root / extra)] if extra else [str(REPO / "operator")]
                figures[name] = {}
                for with_kopf in (False, True):
                    samples = [await measure(python, path, body, with_kopf, config_path, tmp)
                               for _ in range(runs)]
                    column = "with_kopf" if with_kopf else "alone"
                    figures[name][column] = {
                        "peak_mb": round(statistics.median(s["peak_mb"] for s in samples), 1),
                        "rss_mb": round(statistics.median(s["rss_mb"] for s in samples), 1),
                        "modules": samples[-1]["modules"],
                        "seconds": round(statistics.median(s["seconds"] for s in samples), 2),
                        "k8s_libs": samples[-1]["k8s_libs"],
                        "peak_mb_runs": [round(s["peak_mb"], 1) for s in samples]}
                    print(f"{name:40s} {column:9s} peak {figures[name][column]['peak_mb']:6.1f} MB"
                          f"  modules {samples[-1]['modules']:5d}", file=sys.stderr, flush=True)
        finally:
            await runner.cleanup()
    return figures


def versions(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for directory in [root / "venv" / "lib", *(root / name for name in EXTRAS)]:
        for info in directory.rglob("*.dist-info"):
            if info.parent.name in ("site-packages", *EXTRAS):
                name, _, version = info.name[:-len(".dist-info")].rpartition("-")
                if name.lower().replace("_", "-") in (
                        "kopf", "aiohttp", "pyyaml", "kubernetes-asyncio", "kubernetes",
                        "lightkube", "lightkube-models", "httpx"):
                    found[name] = version
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.clientmem", description=__doc__)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="the throwaway venv and --target directories")
    parser.add_argument("--setup", action="store_true", help="create them first (PyPI)")
    parser.add_argument("--runs", type=int, default=3, help="interpreters per figure")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                        "clientmem.json")
    args = parser.parse_args(argv)
    if args.setup:
        setup(args.root)
    figures = asyncio.run(run(args.root, args.runs))
    result = {"command": " ".join(["python -m bench.clientmem", *(argv or sys.argv[1:])]),
              "what": "peak RSS (VmHWM) of a fresh interpreter that imports the candidate, "
                      "loads a kubeconfig and GETs one ConfigMap over TLS from a loopback "
                      "stand-in server; median of --runs",
              "python": sys.version.split()[0], "versions": versions(args.root),
              "candidates": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
