"""The smoke test of a model: a Job that runs once its workload is ready and proves the model serves, through its
Service, with its API key: `/v1/models` lists the served name, and one tiny completion (or embedding, for a pooling
model) answers. With the inference gateway it then sends the same request through the Gateway to the team's endpoint,
so a route the gateway did not accept, or a pool whose picker it cannot reach, fails the test too (pulumi-kubernetes
does not await HTTPRoutes or InferencePools). pulumi-kubernetes awaits the Job, so `pulumi up` fails when a model
deploys but does not serve.

The Job is named after what it tests (model, revision, arguments, image): a change to any of them is a new Job,
which runs again; an unchanged model keeps its completed Job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fleet.labels import FOR_MODEL_LABEL, MANAGED_BY, ROLE_LABEL, TEAM_LABEL, VLLM_PORT
from fleet.render import Manifest, meta, restricted_container, restricted_pod
from fleet.spec.resolved import ResolvedModel

SMOKE_ROLE = "smoke"
PROBE_TIMEOUT_SECONDS = 120

# Python's standard library only: the vLLM image has no curl guarantee, it has python3.
SCRIPT = """\
import json, os, sys, time, urllib.error, urllib.request
base, name, probe = os.environ["MODEL_URL"], os.environ["SERVED_MODEL"], os.environ["PROBE"]
deadline = time.time() + float(os.environ["WAIT_SECONDS"])
headers = {"Content-Type": "application/json"}
if os.environ.get("VLLM_API_KEY"):
    headers["Authorization"] = "Bearer " + os.environ["VLLM_API_KEY"]
def call(path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers=headers), timeout=int(os.environ["TIMEOUT"])) as r:
        text = r.read()
        return json.loads(text) if text else None
while True:
    try:
        call("/health")
        break
    except (urllib.error.URLError, OSError) as exc:
        if time.time() > deadline:
            sys.exit(f"{base}/health did not answer before the deadline: {exc}")
        time.sleep(10)
served = [m.get("id") for m in (call("/v1/models") or {}).get("data", [])]
if name not in served:
    sys.exit(f"/v1/models serves {served}, not {name!r}")
if probe == "embeddings":
    out = call("/v1/embeddings", {"model": name, "input": "vllm-fleet smoke test"})
    ok = bool(out and out.get("data") and out["data"][0].get("embedding"))
else:
    out = call("/v1/completions", {"model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0})
    ok = bool(out and out.get("choices"))
if not ok:
    sys.exit(f"/v1/{probe} answered without a result: {json.dumps(out)[:300]}")
print(f"{name}: /v1/models and /v1/{probe} answered")
gateway, host = os.environ.get("GATEWAY_ADDRESS"), os.environ.get("GATEWAY_HOST")
if gateway:
    import http.client, socket, ssl
    # The team's endpoint through the Gateway's Service, with the team's host name as TLS server name and Host: the
    # route is tested, not the certificate (the platform's), so the chain is not verified here.
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    body = {"model": name, "input": "vllm-fleet smoke test"} if probe == "embeddings" else {
        "model": name, "prompt": "Hello", "max_tokens": 1, "temperature": 0}
    while True:
        try:
            conn = http.client.HTTPSConnection(host, 443, timeout=int(os.environ["TIMEOUT"]))
            address, _, port = gateway.rpartition(":")
            conn.sock = tls.wrap_socket(socket.create_connection((address, int(port)), timeout=int(os.environ["TIMEOUT"])),
                                        server_hostname=host)
            conn.request("POST", "/v1/" + probe, body=json.dumps(body), headers={**headers, "Host": host})
            answer = conn.getresponse()
            status, text = answer.status, answer.read()
            if status == 200 and json.loads(text).get("data" if probe == "embeddings" else "choices"):
                break
            problem = f"HTTP {status}: {text[:300]!r}"
        except (OSError, ValueError, http.client.HTTPException) as exc:
            problem = str(exc)
        if time.time() > deadline:
            sys.exit(f"https://{host}/v1/{probe} through {gateway} did not answer before the deadline: {problem}")
        time.sleep(10)
    print(f"{name}: https://{host}/v1/{probe} answered through the gateway")
"""


def smoke_pod_labels(model: ResolvedModel) -> dict[str, str]:
    """Not a serving pod: the model's selectors never match it; the team's network policy lets it reach them."""
    return {**MANAGED_BY, TEAM_LABEL: model.team, ROLE_LABEL: SMOKE_ROLE, FOR_MODEL_LABEL: model.name}


def served_name(model: ResolvedModel) -> str:
    return model.spec.served_model_name[0] if model.spec.served_model_name else model.spec.model


def smoke_job(model: ResolvedModel, image: str, args: list[str], api_key: tuple[str, str] | None, wait_seconds: int,
              gateway: tuple[str, str] | None = None) -> Manifest:
    """`wait_seconds`: how long the test waits for /health (the workload's rollout when the provider does not await
    it, a LeaderWorkerSet's) and for the gateway's route; the Job's deadline adds the probe time. `gateway`: the
    Gateway's in-cluster address and the team's host name, to test the request path through it too."""
    tested = [model.spec.model, model.spec.revision, args, image, *([list(gateway)] if gateway else [])]
    identity = json.dumps(tested, sort_keys=True)
    name = f"{model.name}-smoke-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"
    env: list[dict[str, Any]] = [
        {"name": "MODEL_URL", "value": f"http://{model.name}.{model.namespace}.svc:{VLLM_PORT}"},
        {"name": "SERVED_MODEL", "value": served_name(model)},
        {"name": "PROBE", "value": "embeddings" if model.spec.runner == "pooling" else "completions"},
        {"name": "WAIT_SECONDS", "value": str(wait_seconds)},
        {"name": "TIMEOUT", "value": str(PROBE_TIMEOUT_SECONDS)},
    ]
    if gateway is not None:
        env += [{"name": "GATEWAY_ADDRESS", "value": gateway[0]}, {"name": "GATEWAY_HOST", "value": gateway[1]}]
    if api_key is not None:
        secret, key = api_key
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    labels = smoke_pod_labels(model)
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(name, model.namespace, labels),
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": wait_seconds + (6 if gateway else 3) * PROBE_TIMEOUT_SECONDS + 60,
            "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": model.name,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": restricted_pod(),
                "containers": [{
                    "name": "smoke",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", SCRIPT],
                    "env": env,
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
                    "securityContext": restricted_container(),
                }],
            }},
        },
    }
