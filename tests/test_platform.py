"""Platform components under mocks: node groups, launch templates, IAM, GPU system DaemonSets, model cache,
prefetch Jobs and team tenancy — fields asserted on the captured resources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleet.errors import ConfigError
from fleet.labels import ROLE_LABEL
from fleet.offline.engine import UNKNOWN, Captured
from fleet.offline.plan import capture, make_plan
from fleet.spec.load import load
from tests.conftest import ROOT, edit, grant, karpenter_l40s, s3_cache

STATEFUL = ("aws:kms/key:Key", "aws:efs/fileSystem:FileSystem", "aws:fsx/lustreFileSystem:LustreFileSystem",
            "aws:s3/bucket:Bucket", "kubernetes:core/v1:PersistentVolume", "kubernetes:core/v1:PersistentVolumeClaim")


@pytest.fixture(scope="module")
def prod() -> dict[str, Captured]:
    return {c.name: c for c in capture(load("prod", ROOT))}


@pytest.fixture(scope="module")
def dev() -> dict[str, Captured]:
    return {c.name: c for c in capture(load("dev", ROOT))}


def of_type(resources: dict[str, Captured], typ: str) -> list[Captured]:
    return [c for c in resources.values() if c.type == typ]


def daemonset_pools(resources: dict[str, Captured], name: str) -> list[str]:
    """The pools a DaemonSet's required node affinity admits."""
    spec = resources[name].inputs["spec"]["template"]["spec"]
    return spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"]


def test_node_groups_take_ami_capacity_labels_taint_and_scaling_from_the_pools(prod) -> None:
    h100 = prod["pool-h100-ng"].inputs
    assert h100["amiType"] == "AL2023_x86_64_NVIDIA"
    assert h100["capacityType"] == "CAPACITY_BLOCK"
    # AWS's procedure for Capacity Blocks in managed node groups: the instance type is the launch template's; the suite's
    # time (tests/conftest.py) falls inside the block, so the group is created at the block's size
    # (test_capacity_blocks_follow_the_aws_procedure, tests/test_capacity.py)
    assert "instanceTypes" not in h100
    assert h100["scalingConfig"] == {"minSize": 0, "maxSize": 6, "desiredSize": 6}
    assert h100["updateConfig"] == {"maxUnavailable": 1}
    assert h100["subnetIds"] == ["subnet-0a9e7c1b2c3d40011"]
    assert h100["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert h100["labels"] == {"vllm-fleet.io/pool": "h100", "vllm-fleet.io/gpu-model": "H100",
                              "vllm-fleet.io/gpu-memory-gib": "80", "vllm-fleet.io/gpus-per-node": "8"}
    assert prod["pool-h100-ng"].ignore_changes == ["scalingConfig.desiredSize"]
    l4 = prod["pool-l4-ng"].inputs
    assert l4["amiType"] == "AL2023_x86_64_NVIDIA" and l4["capacityType"] == "ON_DEMAND"
    assert l4["scalingConfig"]["desiredSize"] == 2  # defaults to min_size


def test_launch_templates_enforce_imdsv2_private_encrypted_and_efa(prod) -> None:
    lt = prod["pool-h100-lt"].inputs
    assert lt["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    (disk,) = lt["blockDeviceMappings"]
    assert disk == {"deviceName": "/dev/xvda", "ebs": {"volumeSize": 400, "volumeType": "gp3", "encrypted": "true",
                                                         "deleteOnTermination": "true"}}
    nics = lt["networkInterfaces"]
    assert len(nics) == 32 and all(n["interfaceType"] == "efa" and n["associatePublicIpAddress"] == "false" for n in nics)
    assert [n["networkCardIndex"] for n in nics] == list(range(32))
    # every interface carries the cluster's group and the pool's EFA group (EKS adds none to a template that names interfaces)
    efa_sg = prod["pool-h100-efa-sg"]
    assert all(n["securityGroups"] == ["sg-0cluster", UNKNOWN] for n in nics)   # the EFA group's id is unknown at preview
    self_only = {"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True, "description": "EFA: all traffic within the group"}
    assert efa_sg.inputs["ingress"] == [self_only] and efa_sg.inputs["egress"] == [self_only]
    l4 = prod["pool-l4-lt"].inputs
    assert l4["blockDeviceMappings"][0]["deviceName"] == "/dev/xvda"  # AL2023's root volume
    assert l4["networkInterfaces"] == [{"deviceIndex": 0, "associatePublicIpAddress": "false", "deleteOnTermination": "true",
                                        "securityGroups": ["sg-0cluster"]}]
    assert "instanceMarketOptions" not in l4 and "instanceType" not in l4
    assert "pool-l4-efa-sg" not in prod


def test_a_bottlerocket_pool_gets_its_ami_type_and_its_data_volume(project: Path) -> None:
    edit(project / "stacks" / "Pulumi.prod.yaml", "    - name: l4\n      ami_version: 1.33.13-20260714\n",
         "    - name: l4\n      ami_family: bottlerocket\n")
    prod = {c.name: c for c in capture(load("prod", project))}
    assert prod["pool-l4-ng"].inputs["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"
    assert prod["pool-l4-lt"].inputs["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"  # Bottlerocket's data volume
    assert prod["pool-l4-ng"].inputs["capacityType"] == "ON_DEMAND"
    # its AMI runs the device plugin itself: the stack's DaemonSet stays off it, DCGM does not
    assert daemonset_pools(prod, "daemonset-gpu-system-nvidia-device-plugin") == ["h100", "l40s"]
    assert daemonset_pools(prod, "daemonset-gpu-system-dcgm-exporter") == ["h100", "l4", "l40s"]


def test_capacity_blocks_follow_the_aws_procedure(prod, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """https://docs.aws.amazon.com/eks/latest/userguide/capacity-blocks-mng.html: the launch template carries the
    capacity-block market type, the reservation and the instance type; the group is 0 before the block starts;
    scheduled scaling brings it to the block's size when it begins and to 0 more than 30 minutes before it ends."""
    lt = prod["pool-h100-lt"].inputs
    assert lt["instanceType"] == "p5.48xlarge"
    assert lt["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert lt["capacityReservationSpecification"] == {"capacityReservationTarget": {"capacityReservationId": "cr-0a1b2c3d4e5f60789"}}
    monkeypatch.setenv("VLLM_FLEET_NOW", "2026-12-01T00:00:00Z")   # `pulumi up` before the block begins
    before = {c.name: c for c in capture(load("prod", ROOT))}
    assert before["pool-h100-ng"].inputs["scalingConfig"]["desiredSize"] == 0
    start, drain = before["pool-h100-block-start"].inputs, before["pool-h100-block-drain"].inputs
    assert (start["startTime"], start["desiredCapacity"], start["maxSize"]) == ("2026-12-07T11:30:00Z", 6, 6)
    assert (drain["startTime"], drain["desiredCapacity"], drain["minSize"]) == ("2027-01-04T10:45:00Z", 0, 0)
    assert start["autoscalingGroupName"] == UNKNOWN   # the group EKS creates behind the node group, known after `up`
    update = {c.name: c for c in capture(load("prod", ROOT), preview=False)}
    assert update["pool-h100-block-start"].inputs["autoscalingGroupName"] == "eks-pool-h100-ng"
    monkeypatch.delenv("VLLM_FLEET_NOW")
    monkeypatch.setenv("VLLM_FLEET_NOW", "2026-12-07T12:00:00Z")
    # a block's pool takes no minimum and one instance type; a karpenter pool cannot hold one
    stack = project / "stacks" / "Pulumi.prod.yaml"
    edit(stack, "      max_size: 6\n      disk_gib: 400\n", "      min_size: 2\n      max_size: 6\n      disk_gib: 400\n")
    with pytest.raises(ConfigError, match="a capacity-block pool starts at 0 nodes"):
        load("prod", project)
    edit(stack, "      min_size: 2\n      max_size: 6\n      disk_gib: 400\n", "      max_size: 6\n      disk_gib: 400\n")
    edit(stack, '      capacity_block_ends_at: "2027-01-04T11:30:00Z"\n', '      capacity_block_ends_at: "2026-12-07T12:00:00Z"\n')
    with pytest.raises(ConfigError, match="must come more than an hour after"):
        load("prod", project)


def test_node_role_has_exactly_the_worker_policies_and_no_wildcards(prod) -> None:
    role = prod["pool-h100-node-role"].inputs
    assert json.loads(role["assumeRolePolicy"])["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    attached = sorted(c.inputs["policyArn"] for c in of_type(prod, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                      if c.name.startswith("pool-h100-"))
    assert attached == ["arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
                        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]
    for c in prod.values():
        if c.type.startswith("aws:iam/"):
            assert '"*"' not in json.dumps(c.inputs), c.name


def test_device_plugin_only_on_pools_whose_ami_lacks_it_and_dcgm_everywhere(prod) -> None:

    plugin = prod["daemonset-gpu-system-nvidia-device-plugin"].inputs
    assert daemonset_pools(prod, "daemonset-gpu-system-nvidia-device-plugin") == ["h100", "l4", "l40s"]  # every pool is AL2023
    pod = plugin["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["containers"][0]["image"].startswith("nvcr.io/nvidia/k8s-device-plugin:v0.17.4@sha256:")
    # hardened where the vendor allows: own account without a token, RuntimeDefault seccomp, no capabilities
    assert pod["serviceAccountName"] == "nvidia-device-plugin" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert prod["serviceaccount-gpu-system-nvidia-device-plugin"].inputs["automountServiceAccountToken"] is False
    dcgm = prod["daemonset-gpu-system-dcgm-exporter"].inputs["spec"]["template"]["spec"]
    assert dcgm["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    config = json.loads(prod["configmap-gpu-system-nvidia-device-plugin-config"].inputs["data"]["config.yaml"])
    assert config == {"version": "v1", "flags": {"migStrategy": "none", "failOnInitError": True}}
    assert daemonset_pools(prod, "daemonset-gpu-system-dcgm-exporter") == ["h100", "l4", "l40s"]
    assert prod["servicemonitor-gpu-system-dcgm-exporter"].inputs["spec"]["endpoints"][0]["port"] == "metrics"


def test_time_slicing_config_carries_both_safety_switches(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("  vllm-fleet:model_cache:", "  vllm-fleet:device_plugin:\n    time_slicing: {enabled: true, replicas: 4}\n  vllm-fleet:model_cache:"))
    caps = {c.name: c for c in capture(load("dev", project))}
    config = json.loads(caps["configmap-gpu-system-nvidia-device-plugin-config"].inputs["data"]["config.yaml"])
    assert config["sharing"] == {"timeSlicing": {"renameByDefault": True, "failRequestsGreaterThanOne": True,
                                                 "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}


def test_no_device_plugin_when_every_pool_is_bottlerocket(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("      capacity_type: on-demand\n", "      capacity_type: on-demand\n      ami_family: bottlerocket\n", 1))
    caps = {c.name: c for c in capture(load("dev", project))}
    assert "daemonset-gpu-system-nvidia-device-plugin" not in caps
    assert "daemonset-gpu-system-dcgm-exporter" in caps


def test_prod_protects_every_stateful_resource_and_dev_does_not(prod, dev) -> None:
    for resources, expected in ((prod, True), (dev, False)):
        stateful = [c for c in resources.values() if c.type in STATEFUL]
        assert len(stateful) >= 5
        for c in stateful:
            assert (c.protect, c.retain_on_delete) == (expected, expected), c.name
        for team in ("search", "assistant"):
            ns = resources[f"namespace-team-{team}"]
            assert (ns.protect, ns.retain_on_delete) == (expected, expected)


def test_fsx_cache_in_prod(prod) -> None:
    fsx = prod["model-cache-fsx"].inputs
    assert fsx["deploymentType"] == "PERSISTENT_2" and fsx["perUnitStorageThroughput"] == 500
    assert fsx["storageCapacity"] == 4800 and fsx["subnetIds"] == "subnet-0a9e7c1b2c3d40011"
    assert "kmsKeyId" in fsx  # the stack's KMS key (unknown until created)
    pv = prod["persistentvolume-model-cache-team-search"].inputs["spec"]
    assert pv["persistentVolumeReclaimPolicy"] == "Retain" and pv["csi"]["driver"] == "fsx.csi.aws.com"
    assert pv["claimRef"] == {"namespace": "team-search", "name": "model-cache"}


def test_efs_cache_in_dev(dev) -> None:
    efs = dev["model-cache-efs"].inputs
    assert efs["encrypted"] is True and efs["throughputMode"] == "elastic"
    assert sorted(c.inputs["subnetId"] for c in of_type(dev, "aws:efs/mountTarget:MountTarget")) == [
        "subnet-0d1e5a1b2c3d40001", "subnet-0d1e5a1b2c3d40002"]
    (rule,) = dev["model-cache-efs-sg"].inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"], rule["securityGroups"]) == ("tcp", 2049, 2049, ["sg-0cluster"])
    ap = dev["model-cache-ap-search"].inputs
    assert ap["rootDirectory"]["path"] == "/teams/search" and ap["posixUser"] == {"uid": 1000, "gid": 1000}
    addon = dev["model-cache-efs-csi"].inputs
    assert addon["addonName"] == "aws-efs-csi-driver" and "serviceAccountRoleArn" in addon
    trust = json.loads(dev["model-cache-efs-csi-role"].inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE"}
    assert trust["Condition"]["StringEquals"]["oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE:sub"] == "system:serviceaccount:kube-system:efs-csi-controller-sa"
    pv = dev["persistentvolume-model-cache-team-search"].inputs["spec"]
    assert pv["mountOptions"] == ["tls"] and pv["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["accessModes"] == ["ReadWriteMany"]
    pvc = dev["persistentvolumeclaim-team-search-model-cache"].inputs["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"] and pvc["storageClassName"] == "model-cache"
    assert pvc["volumeName"] == "model-cache-team-search"


def test_s3_cache_blocks_public_access_encrypts_versions_and_mounts_read_only(project: Path) -> None:
    s3_cache(project)
    caps = {c.name: c for c in capture(load("dev", project))}
    assert caps["model-cache-bucket"].inputs["bucket"] == "fleet-dev-dev-model-cache"
    pab = caps["model-cache-bucket-pab"].inputs
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    rule = caps["model-cache-bucket-sse"].inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert rule["sseAlgorithm"] == "aws:kms"
    assert caps["model-cache-bucket-versioning"].inputs["versioningConfiguration"] == {"status": "Enabled"}
    pv = caps["persistentvolume-model-cache-team-search"].inputs["spec"]
    assert pv["accessModes"] == ["ReadOnlyMany"] and "read-only" in pv["mountOptions"]
    # staged outside the stack: no prefetch Job (the smoke-test Jobs remain)
    assert not any(c.type == "kubernetes:batch/v1:Job" and "prefetch" in c.name for c in caps.values())
    deploy = caps["deployment-team-search-qwen-3b"].inputs["spec"]["template"]["spec"]
    assert {"name": "model-cache", "mountPath": "/models", "readOnly": True} in deploy["containers"][0]["volumeMounts"]


def test_prefetch_job_per_model_and_revision_before_the_workload(dev) -> None:
    jobs = [c for c in of_type(dev, "kubernetes:batch/v1:Job")
            if c.inputs["metadata"]["labels"].get(ROLE_LABEL) == "prefetch"]
    assert len(jobs) == 3
    job = next(c for c in jobs if c.inputs["metadata"]["name"].startswith("llama-8b-prefetch-"))
    pod = job.inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["set -e && hf download meta-llama/Llama-3.1-8B-Instruct --revision "
                                 "0e9e39f249a16976918f6564b8830bc894c89659 --exclude 'original/*' && "
                                 "hf download acme-ml/llama-3.1-8b-support-tone-lora --revision "
                                 "5b2c8e1f0a9d4c7e8b3a6f1d2e9c0b7a4d8f5e21 --local-dir /models/adapters/llama-8b/support-tone"]
    assert {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/value"} in container["env"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert job.inputs["spec"]["activeDeadlineSeconds"] >= 600   # sized from the checkpoint (tests/test_deploy_time.py)
    deploy = dev["deployment-team-assistant-llama-8b"]
    assert job.urn in deploy.dependencies
    env = {e["name"]: e.get("value") for e in deploy.inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_HOME"] == "/models/hf" and env["HF_HUB_OFFLINE"] == "1" and "HF_TOKEN_PATH" not in env
    # only the prefetch Job writes the cache; serving pods read it
    pod = deploy.inputs["spec"]["template"]["spec"]
    assert {"name": "model-cache", "mountPath": "/models", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache", "readOnly": True}} in pod["volumes"]


def test_team_tenancy(dev) -> None:
    ns = dev["namespace-team-search"].inputs["metadata"]["labels"]
    assert ns["pod-security.kubernetes.io/enforce"] == "restricted"
    hard = dev["resourcequota-team-search-team-quota"].inputs["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "2" and not any(k.startswith("limits.nvidia") for k in hard)
    assert {"requests.cpu", "limits.cpu", "requests.memory", "limits.memory"} <= set(hard)
    role = dev["role-team-search-team-edit"].inputs
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in role["rules"])
    binding = dev["rolebinding-team-search-team-edit"].inputs
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "vllm-fleet:search"}]
    policies = {c.inputs["metadata"]["name"]: c.inputs["spec"] for c in of_type(dev, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if c.inputs["metadata"]["namespace"] == "team-search"}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert policies["allow-dns"]["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert policies["allow-gateway"]["ingress"][0]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]
    # With a prefetched cache only the prefetch Jobs reach the Hub.
    assert policies["allow-hf-egress"]["podSelector"] == {"matchLabels": {"vllm-fleet.io/role": "prefetch"}}


def changed_paths(before: list[Captured], after: list[Captured]) -> set[tuple[str, str]]:
    def flat(value: Any, path: str, out: dict[str, Any]) -> dict[str, Any]:
        if isinstance(value, dict):
            for k, v in value.items():
                flat(v, f"{path}.{k}" if path else k, out)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                flat(v, f"{path}[{i}]", out)
        else:
            out[path] = value
        return out

    a = {c.name: flat(c.inputs, "", {}) for c in before}
    b = {c.name: flat(c.inputs, "", {}) for c in after}
    assert a.keys() == b.keys()
    return {(name, p) for name in a for p in a[name].keys() | b[name].keys() if a[name].get(p) != b[name].get(p)}


def test_one_config_value_changes_exactly_the_expected_fields(project: Path) -> None:
    before = capture(load("dev", project))
    stack = project / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("      desired_size: 2\n", "      desired_size: 2\n      disk_gib: 300\n"))
    after = capture(load("dev", project))
    assert changed_paths(before, after) == {("pool-l40s-lt", "blockDeviceMappings[0].ebs.volumeSize")}
    stack.write_text(stack.read_text().replace("vllm-fleet:spare_gpus: 1", "vllm-fleet:spare_gpus: 0"))
    again = capture(load("dev", project))
    assert changed_paths(after, again) == set()  # every dev model is single-replica: Recreate either way
    grant(project, "search", gpu_quota={"dev": 3, "prod": 16})
    assert changed_paths(again, capture(load("dev", project))) == {
        ("resourcequota-team-search-team-quota", "spec.hard.requests.nvidia.com/gpu")}


def test_prod_plan_is_clean_with_every_platform_piece(prod_root: Path) -> None:
    plan = make_plan("prod", prod_root)
    assert plan.exit_code == 0
    kinds = {c.type for c in plan.resources}
    assert {"aws:eks/nodeGroup:NodeGroup", "aws:ec2/launchTemplate:LaunchTemplate",
            "aws:fsx/lustreFileSystem:LustreFileSystem", "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"} <= kinds
    assert sum(1 for c in plan.resources if c.type == "vllm-fleet:tenancy:TeamTenancy") == 3


def test_karpenter_pool_renders_nodepool_and_nodeclass_and_scales_from_zero(project: Path) -> None:
    karpenter_l40s(project)
    caps = {c.name: c for c in capture(load("dev", project))}
    assert "pool-l40s-ng" not in caps and "pool-l40s-lt" not in caps
    pool = caps["nodepool-l40s"].inputs["spec"]
    template = pool["template"]["spec"]
    assert template["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert template["requirements"][0] == {"key": "node.kubernetes.io/instance-type", "operator": "In",
                                           "values": ["g6e.xlarge", "g6e.2xlarge"]}
    assert pool["disruption"]["consolidationPolicy"] == "WhenEmpty"      # budgets and expiry: tests/test_disruption.py
    assert pool["limits"] == {"nvidia.com/gpu": "4"}
    assert pool["template"]["metadata"]["labels"]["vllm-fleet.io/pool"] == "l40s"
    nc = caps["ec2nodeclass-l40s"].inputs["spec"]
    assert nc["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert nc["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    assert nc["associatePublicIPAddress"] is False and nc["blockDeviceMappings"][0]["ebs"]["encrypted"] is True
    assert caps["pool-l40s-access"].inputs["type"] == "EC2_LINUX"
    plan = make_plan("dev", project)
    assert plan.schema_problems == [] and plan.mandatory == []


def test_karpenter_pools_take_no_minimum(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("      capacity_type: on-demand\n", "      capacity_type: on-demand\n      provisioner: karpenter\n", 1))
    from fleet.errors import ConfigError

    with pytest.raises(ConfigError, match="a karpenter pool scales from zero on demand — remove min_size and desired_size"):
        load("dev", project)


def test_efa_pools_get_the_device_plugin_and_multi_node_pods_an_efa_capable_image(prod, project: Path) -> None:
    plugin = prod["daemonset-gpu-system-aws-efa-k8s-device-plugin"].inputs["spec"]["template"]["spec"]
    terms = plugin["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "vllm-fleet.io/pool", "operator": "In", "values": ["h100"]}]}]  # EFA pools only
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in plugin["tolerations"]
    assert plugin["containers"][0]["image"].startswith("public.ecr.aws/eks/aws-efa-k8s-device-plugin:v0.5.6@sha256:")
    lws = prod["leaderworkerset-team-research-llama-405b"].inputs["spec"]["leaderWorkerTemplate"]
    for template in ("leaderTemplate", "workerTemplate"):
        (c,) = lws[template]["spec"]["containers"]
        assert c["image"].startswith("763104351884.dkr.ecr.us-east-1.amazonaws.com/vllm:0.34.0-gpu-py312-ec2@sha256:")
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert (env["FI_PROVIDER"], env["FI_EFA_USE_DEVICE_RDMA"], env["FI_EFA_FORK_SAFE"]) == ("efa", "1", "1")
    assert lws["leaderTemplate"]["spec"]["containers"][0]["resources"]["limits"]["vpc.amazonaws.com/efa"] == "32"
    # single-node models keep the stock image
    llama = prod["deployment-team-assistant-llama-8b"].inputs["spec"]["template"]["spec"]["containers"][0]
    assert llama["image"].startswith("docker.io/vllm/vllm-openai:v0.34.0@")
    # without an EFA-capable image the 405B would ask for EFA devices NCCL can never use: a config error
    stack = project / "stacks" / "Pulumi.prod.yaml"
    text = stack.read_text()
    stack.write_text(text[:text.index("    efa:\n      repository:")] + text[text.index("  vllm-fleet:spare_gpus"):])
    with pytest.raises(ConfigError, match="the stock vLLM image has no aws-ofi-nccl plugin"):
        load("prod", project)


def test_network_policies_are_enforced_by_the_vpc_cni_agent(prod, project: Path) -> None:
    cni = prod["vpc-cni"].inputs
    assert cni["addonName"] == "vpc-cni" and json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert cni["resolveConflictsOnUpdate"] == "PRESERVE"
    stack = project / "stacks" / "Pulumi.dev.yaml"
    edit(stack, "    name: fleet-dev\n", "    name: fleet-dev\n    network_policy_enforcement: none\n")
    plan = make_plan("dev", project)
    assert "vpc-cni" not in {c.name for c in plan.resources}
    assert [(f.rule_id, f.level) for f in plan.findings if f.rule_id == "D19"] == [("D19", "advisory")]   # dev: advisory
    edit(stack, "network_policy_enforcement: none", "network_policy_enforcement: external")
    plan = make_plan("dev", project)
    assert "vpc-cni" not in {c.name for c in plan.resources} and not [f for f in plan.findings if f.rule_id == "D19"]


def test_a_pool_too_small_for_its_models_is_a_finding(project: Path) -> None:
    """The dev stack with one more autoscaled model: pool headroom below the spare GPUs."""
    team = project / "stacks" / "teams" / "search.yaml"
    edit(team, "    profile: throughput\n", "    profile: throughput\n    autoscaling: {min_replicas: 1, max_replicas: 3}\n")
    grant(project, "search", gpu_quota={"dev": 4, "prod": 16})
    plan = make_plan("dev", project)
    pools = {p.pool: p for p in plan.document().pools}
    assert pools["l40s"].headroom == -1
    (finding,) = [f for f in plan.findings if f.rule_id == "E12"]
    assert finding.level == "advisory"   # mandatory in prod
    assert finding.message == "pool l40s: its models need up to 5 GPUs at max replicas plus 1 spare for rollouts, but it holds at most 4 (4 nodes × 1)"
    from fleet.offline.report import markdown
    assert "| E12 | advisory |" in markdown(plan.document())


@pytest.mark.parametrize("backend", ["efs", "fsx-lustre"])
def test_no_two_teams_share_a_cache_path(backend: str, project: Path) -> None:
    """EFS: one access point per team, rooted at /teams/<team>; FSx for Lustre: each team's volume mounts
    /teams/<team> of the file system, created by a platform Job before any team volume exists."""
    stack = "prod" if backend == "fsx-lustre" else "dev"
    caps = capture(load(stack, project), preview=False)
    by_name = {c.name: c for c in caps}
    paths = {}
    for pv in (c for c in caps if c.type == "kubernetes:core/v1:PersistentVolume" and c.inputs["spec"]["claimRef"]["namespace"].startswith("team-")):
        csi = pv.inputs["spec"]["csi"]
        if backend == "efs":
            fs, ap = csi["volumeHandle"].split("::")
            path = (fs, by_name[ap.removesuffix("-id")].inputs["rootDirectory"]["path"])
        else:
            path = (csi["volumeAttributes"]["dnsname"], csi["volumeAttributes"]["mountname"])
        paths[pv.inputs["spec"]["claimRef"]["namespace"]] = path
    assert len(paths) >= 2 and len(set(paths.values())) == len(paths), paths
    assert all(p[1].endswith(f"teams/{ns.removeprefix('team-')}") for ns, p in paths.items())
    if backend == "fsx-lustre":
        job = next(c for c in caps if c.name.startswith("job-gpu-system-model-cache-directories-"))
        script = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"][0]
        assert all(f"mkdir -p -m 0750 /fsx/teams/{ns.removeprefix('team-')}" in script for ns in paths)
        for pv in (c for c in caps if c.type == "kubernetes:core/v1:PersistentVolume" and c.name != "persistentvolume-model-cache-root"):
            assert job.urn in pv.dependencies   # the directory exists before any team can mount it
        assert by_name["namespace-gpu-system"].protect   # it holds the file system's claim in prod
