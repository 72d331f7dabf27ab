"""``clusters/aws_iam.py`` and ``clusters/gpu.yaml`` against moto's offline AWS (no network, no real account).

What runs is the project's IAM setup, then Ray's own AWS code on ``gpu.yaml``: ``prepare_config``, the instance-type
fill-out, ``validate_config``, ``bootstrap_aws`` (key pair, subnets, security group), and ``AWSNodeProvider`` launching the
head as ``ray up``'s ``get_or_create_head_node`` builds it and a worker through Ray's ``BaseNodeLauncher`` (the
autoscaler's launch path). Policies are evaluated twice: statement by statement with moto's own policy evaluator
(``moto.iam.access_control.IAMPolicy``; moto does not implement ``iam:SimulatePrincipalPolicy``), and end to end by
running Ray's head-side code with the head role's credentials while moto enforces IAM
(``INITIAL_NO_AUTH_ACTION_COUNT``). Limits of moto, so of these tests: its enforcement passes resource ``*`` for
EC2 calls and ignores policy conditions (the cluster tag, ``ec2:CreateAction``, ``iam:PassedToService``), it does
not check ``iam:PassRole`` on RunInstances nor resolve ``resolve:ssm:`` image ids, and its Service Quotas knows only
the ``vpc`` service code. Each test's ``mock_aws`` resets moto's in-process state, which a ``ThreadedMotoServer``
running in the same process (``tests/conftest.py``'s ``s3_server``) shares.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from moto.iam.access_control import IAMPolicy, PermissionResult  # noqa: E402
from ray.autoscaler.tags import (NODE_KIND_HEAD, NODE_KIND_WORKER, STATUS_UNINITIALIZED, STATUS_UP_TO_DATE,  # noqa: E402
                                 TAG_RAY_CLUSTER_NAME, TAG_RAY_LAUNCH_CONFIG, TAG_RAY_NODE_KIND, TAG_RAY_NODE_NAME,
                                 TAG_RAY_NODE_STATUS, TAG_RAY_USER_NODE_TYPE)

CLUSTERS = Path(__file__).resolve().parents[1] / "clusters"
REGION = "us-west-2"
BUCKET = "infnet-test-bucket"


def load_aws_iam() -> Any:
    """``clusters/aws_iam.py`` as a module (``clusters/`` is no package)."""
    spec = importlib.util.spec_from_file_location("aws_iam", CLUSTERS / "aws_iam.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["aws_iam"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


aws_iam = load_aws_iam()


def clear_ray_boto_caches() -> None:
    """Ray keeps boto3 resources in lru_caches: none may outlive a test's mock."""
    from ray.autoscaler._private.aws.utils import client_cache, resource_cache

    resource_cache.cache_clear()
    client_cache.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[boto3.session.Session]:
    """moto's AWS with fake credentials; HOME in tmp_path (Ray writes ~/.ssh/ray-autoscaler_*.pem)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    clear_ray_boto_caches()
    with moto.mock_aws():
        yield boto3.session.Session(region_name=REGION)
    clear_ray_boto_caches()


def gpu_yaml() -> dict[str, Any]:
    return yaml.safe_load((CLUSTERS / "gpu.yaml").read_text())


def node_config(cfg: dict[str, Any], node_type: str) -> dict[str, Any]:
    return cfg["available_node_types"][node_type]["node_config"]


def worker_type(cfg: dict[str, Any]) -> str:
    (name,) = [n for n in cfg["available_node_types"] if n != cfg["head_node_type"]]
    return name


def with_moto_ami(cfg: dict[str, Any], session: boto3.session.Session) -> tuple[dict[str, Any], str]:
    """``gpu.yaml`` with each ``resolve:ssm:/aws/service/deeplearning/...`` ImageId replaced by an AMI moto knows.

    On AWS, EC2 resolves that parameter at launch with the launcher's ``ssm:GetParameters`` (the head policy's
    grant is checked in ``test_head_policy_...``). moto does neither: it ships only the Amazon Linux, ECS and
    global-infrastructure ``/aws/service`` parameters, and refuses to create one under ``/aws`` (as AWS does).
    So the DLAMI id is swapped for one of moto's Ubuntu AMIs; nothing else in the config changes.
    """
    ubuntu = [{"Name": "name", "Values": ["ubuntu/*"]}]
    ami = session.client("ec2").describe_images(Owners=["amazon"], Filters=ubuntu)["Images"][0]["ImageId"]
    cfg = copy.deepcopy(cfg)
    for node_type in cfg["available_node_types"].values():
        assert node_type["node_config"]["ImageId"].startswith("resolve:ssm:/aws/service/deeplearning/")
        node_type["node_config"]["ImageId"] = ami
    return cfg, ami


def ray_bootstrap(cfg: dict[str, Any]) -> dict[str, Any]:
    """What ``ray up`` does to the YAML before launching anything: ``commands._bootstrap_config``'s steps, uncached."""
    from ray.autoscaler._private.aws.config import bootstrap_aws
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = AWSNodeProvider.fillout_available_node_types_resources(prepare_config(copy.deepcopy(cfg)))
    validate_config(prepared)
    return bootstrap_aws(prepared)


def provider(cfg: dict[str, Any]) -> Any:
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider

    return AWSNodeProvider(cfg["provider"], cfg["cluster_name"])


def launch_head(cfg: dict[str, Any], nodes: Any) -> str:
    """The head as ``commands.get_or_create_head_node`` builds it: ``head_node`` defaults, the type's node_config."""
    from ray.autoscaler._private.util import hash_launch_conf

    config = copy.deepcopy(cfg.get("head_node", {}))
    config.update(node_config(cfg, cfg["head_node_type"]))
    tags = {TAG_RAY_NODE_KIND: NODE_KIND_HEAD, TAG_RAY_USER_NODE_TYPE: cfg["head_node_type"],
            TAG_RAY_LAUNCH_CONFIG: hash_launch_conf(config, cfg["auth"]),
            TAG_RAY_NODE_NAME: f"ray-{cfg['cluster_name']}-head", TAG_RAY_NODE_STATUS: STATUS_UNINITIALIZED}
    (node_id,) = nodes.create_node(config, tags, 1)
    return node_id


def launch_worker(cfg: dict[str, Any], nodes: Any) -> str:
    """One worker through Ray's ``BaseNodeLauncher``, the autoscaler's own launch code (it logs, not raises, errors)."""
    from ray.autoscaler._private.event_summarizer import EventSummarizer
    from ray.autoscaler._private.node_launcher import BaseNodeLauncher
    from ray.autoscaler._private.node_provider_availability_tracker import NodeProviderAvailabilityTracker
    from ray.autoscaler._private.util import ConcurrentCounter

    pending, events = ConcurrentCounter(), EventSummarizer()
    node_type = worker_type(cfg)
    pending.inc(node_type, 1)
    launcher = BaseNodeLauncher(nodes, pending, events, NodeProviderAvailabilityTracker(), node_types=cfg["available_node_types"])
    created = launcher.launch_node(cfg, 1, node_type)
    assert created, events.summary()
    (node_id,) = created
    return node_id


def instance(session: boto3.session.Session, node_id: str) -> dict[str, Any]:
    (reservation,) = session.client("ec2").describe_instances(InstanceIds=[node_id])["Reservations"]
    return reservation["Instances"][0]


def account_id(session: boto3.session.Session) -> str:
    return session.client("sts").get_caller_identity()["Account"]


def stored_policy(session: boto3.session.Session, role: str) -> dict[str, Any]:
    """The role's inline policy as IAM holds it after the setup."""
    document = session.client("iam").get_role_policy(RoleName=role, PolicyName=role)["PolicyDocument"]
    return document if isinstance(document, dict) else json.loads(document)


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """moto's own IAM evaluator: Allow/Deny statements, wildcards in actions and resources (not conditions)."""
    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


def role_session(session: boto3.session.Session, role: str) -> boto3.session.Session:
    """A session with the role's temporary credentials, as an instance with its profile gets them."""
    arn = session.client("iam").get_role(RoleName=role)["Role"]["Arn"]
    creds = session.client("sts").assume_role(RoleArn=arn, RoleSessionName="instance")["Credentials"]
    return boto3.session.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                 aws_session_token=creds["SessionToken"], region_name=REGION)


def enforce_iam(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on moto checks every request against the caller's IAM policies (moto's INITIAL_NO_AUTH_ACTION_COUNT)."""
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)


def denied(call: Any) -> bool:
    """Whether the AWS call is refused for lack of permission."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "UnauthorizedOperation", "AccessDeniedException")
    return False


def test_yaml_names_both_profiles_by_name_and_nothing_holds_an_account_id() -> None:
    cfg = gpu_yaml()
    assert node_config(cfg, cfg["head_node_type"])["IamInstanceProfile"] == {"Name": aws_iam.HEAD}
    assert node_config(cfg, worker_type(cfg))["IamInstanceProfile"] == {"Name": aws_iam.WORKER}
    assert cfg["cluster_name"] == aws_iam.CLUSTER  # the head may terminate only instances tagged with it
    assert cfg["provider"]["region"] == aws_iam.REGION
    assert cfg["max_workers"] == aws_iam.MAX_WORKERS and node_config(cfg, worker_type(cfg))["InstanceType"] == "g6.2xlarge"
    files = [CLUSTERS / "gpu.yaml", CLUSTERS / "aws_iam.py", *sorted((CLUSTERS / "aws").glob("*.json"))]
    assert len(files) == 5
    assert [f.name for f in files if re.search(r"\b\d{12}\b", f.read_text())] == []
    rendered = json.dumps(aws_iam.role_policies(BUCKET))
    assert "${" not in rendered and f"arn:aws:s3:::{BUCKET}/*" in rendered


def test_setup_creates_roles_profiles_policies_bucket_and_spot_role(aws: boto3.session.Session) -> None:
    done = aws_iam.setup(BUCKET, REGION, session=aws)
    assert sum("created" in line for line in done) == 6  # bucket, 2 roles, 2 profiles, the spot service-linked role
    iam = aws.client("iam")
    for role in (aws_iam.HEAD, aws_iam.WORKER):
        profile = iam.get_instance_profile(InstanceProfileName=role)["InstanceProfile"]
        assert [r["RoleName"] for r in profile["Roles"]] == [role]
        trust = profile["Roles"][0]["AssumeRolePolicyDocument"]
        trust = trust if isinstance(trust, dict) else json.loads(trust)
        assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
        assert iam.list_role_policies(RoleName=role)["PolicyNames"] == [role]
        assert stored_policy(aws, role) == aws_iam.role_policies(BUCKET)[role]
    assert iam.list_roles(PathPrefix="/aws-service-role/spot.amazonaws.com/")["Roles"]
    aws.client("s3").head_bucket(Bucket=BUCKET)


def test_script_is_idempotent_and_repairs_drift(aws: boto3.session.Session, capsys: pytest.CaptureFixture[str]) -> None:
    assert aws_iam.main(["--bucket", BUCKET, "--region", REGION]) == 0
    first = capsys.readouterr().out
    iam = aws.client("iam")
    iam.put_role_policy(RoleName=aws_iam.HEAD, PolicyName=aws_iam.HEAD,  # drift: someone widened the policy by hand
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    iam.remove_role_from_instance_profile(InstanceProfileName=aws_iam.WORKER, RoleName=aws_iam.WORKER)
    roles_before = len(iam.list_roles()["Roles"])

    assert aws_iam.main(["--bucket", BUCKET, "--region", REGION]) == 0
    second = capsys.readouterr().out
    assert first.count(": created") == 6 and ": created" not in second  # bucket, 2 roles, 2 profiles, spot role
    assert f"instance profile {aws_iam.WORKER}: exists, role {aws_iam.WORKER} added" in second
    assert stored_policy(aws, aws_iam.HEAD) == aws_iam.role_policies(BUCKET)[aws_iam.HEAD]
    assert len(iam.list_roles()["Roles"]) == roles_before
    for role in (aws_iam.HEAD, aws_iam.WORKER):
        assert [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=role)["InstanceProfile"]["Roles"]] == [role]


def test_ray_launches_the_head_and_a_worker_with_their_profiles(aws: boto3.session.Session) -> None:
    aws_iam.setup(BUCKET, REGION, session=aws)
    cfg, ami = with_moto_ami(gpu_yaml(), aws)
    cfg = ray_bootstrap(cfg)
    assert "IamInstanceProfile" not in cfg["head_node"]  # Ray made no role of its own: it uses ours
    assert cfg["available_node_types"][worker_type(cfg)]["resources"]["accelerator_type:L4"] == 1  # g6.2xlarge found
    nodes = provider(cfg)
    head, worker = instance(aws, launch_head(cfg, nodes)), instance(aws, launch_worker(cfg, nodes))
    profiles = {head["IamInstanceProfile"]["Arn"], worker["IamInstanceProfile"]["Arn"]}
    assert profiles == {f"arn:aws:iam::{account_id(aws)}:instance-profile/{aws_iam.HEAD}",
                        f"arn:aws:iam::{account_id(aws)}:instance-profile/{aws_iam.WORKER}"}
    assert head["IamInstanceProfile"]["Arn"].endswith(aws_iam.HEAD)
    assert (head["InstanceType"], worker["InstanceType"]) == ("m6i.xlarge", "g6.2xlarge")
    assert worker.get("InstanceLifecycle") == "spot" and "InstanceLifecycle" not in head
    assert head["ImageId"] == worker["ImageId"] == ami
    tags = {t["Key"]: t["Value"] for t in worker["Tags"]}
    assert tags[TAG_RAY_CLUSTER_NAME] == aws_iam.CLUSTER and tags[TAG_RAY_NODE_KIND] == NODE_KIND_WORKER
    assert set(nodes.non_terminated_nodes({})) == {head["InstanceId"], worker["InstanceId"]}


def test_security_group_opens_only_ssh_to_the_world(aws: boto3.session.Session) -> None:
    cfg = ray_bootstrap(with_moto_ami(gpu_yaml(), aws)[0])
    (group_id,) = {g for t in cfg["available_node_types"].values() for g in t["node_config"]["SecurityGroupIds"]}
    (group,) = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    world, within = [], []
    for rule in group["IpPermissions"]:
        open_ranges = [r["CidrIp"] for r in rule.get("IpRanges", [])] + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        (world if open_ranges else within).append(rule)
        assert open_ranges in ([], ["0.0.0.0/0"])
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in world] == [("tcp", 22, 22)]
    assert within and all({p["GroupId"] for p in r["UserIdGroupPairs"]} == {group_id} for r in within)


def test_head_policy_passes_only_the_worker_role_and_may_resolve_the_dlami(aws: boto3.session.Session) -> None:
    aws_iam.setup(BUCKET, REGION, session=aws)
    head = stored_policy(aws, aws_iam.HEAD)
    account = account_id(aws)
    assert allows(head, "iam:PassRole", f"arn:aws:iam::{account}:role/{aws_iam.WORKER}")
    for other in (aws_iam.HEAD, "Admin", f"{aws_iam.WORKER}-2"):
        assert not allows(head, "iam:PassRole", f"arn:aws:iam::{account}:role/{other}")
    cfg = gpu_yaml()
    parameter = node_config(cfg, cfg["head_node_type"])["ImageId"].removeprefix("resolve:ssm:")
    for action in ("ssm:GetParameters", "ssm:GetParameter"):
        assert allows(head, action, f"arn:aws:ssm:{REGION}::parameter{parameter}")
    assert not allows(head, "ssm:GetParameters", f"arn:aws:ssm:{REGION}:{account}:parameter/prod/db-password")
    assert allows(head, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/infnet/mlflow-artifacts/1/a.bin")
    assert not allows(head, "s3:PutObject", "arn:aws:s3:::someone-elses-bucket/x")
    for action in ("ec2:RunInstances", "ec2:DescribeInstances", "ec2:CreateTags", "ec2:TerminateInstances"):
        assert allows(head, action, "*")
    assert not allows(head, "iam:CreateRole", "*") and not allows(head, "ec2:CreateSecurityGroup", "*")


def test_worker_policy_reaches_only_the_bucket(aws: boto3.session.Session) -> None:
    aws_iam.setup(BUCKET, REGION, session=aws)
    worker = stored_policy(aws, aws_iam.WORKER)
    for action in ("s3:PutObject", "s3:GetObject", "s3:DeleteObject"):
        assert allows(worker, action, f"arn:aws:s3:::{BUCKET}/infnet/tune/sweep/checkpoint_000001/model.pt")
    assert allows(worker, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}")
    assert not allows(worker, "s3:PutObject", "arn:aws:s3:::another-bucket/infnet/tune/x")
    assert not allows(worker, "s3:PutObject", f"arn:aws:s3:::{BUCKET}-copy/x")
    for action in ("ec2:RunInstances", "iam:PassRole", "ssm:GetParameters"):
        assert not allows(worker, action, "*")


def head_side_config(cfg: dict[str, Any], credentials: Any) -> dict[str, Any]:
    """``~/ray_bootstrap_config.yaml`` as ``ray up`` writes it for the head, run with the head role's credentials."""
    remote = copy.deepcopy(cfg)
    remote.pop("head_node", None)
    remote["auth"]["ssh_private_key"] = "~/ray_bootstrap_key.pem"  # `ray up` copies the key there (HOME is tmp_path)
    shutil.copy(cfg["auth"]["ssh_private_key"], Path("~/ray_bootstrap_key.pem").expanduser())
    frozen = credentials.get_credentials().get_frozen_credentials()
    remote["provider"]["aws_credentials"] = {"aws_access_key_id": frozen.access_key, "aws_secret_access_key": frozen.secret_key,
                                             "aws_session_token": frozen.token}
    return remote


def test_head_role_runs_rays_autoscaler_and_nothing_more(aws: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_iam.setup(BUCKET, REGION, session=aws)
    cfg = ray_bootstrap(with_moto_ami(gpu_yaml(), aws)[0])  # `ray up` on the laptop, with the admin's credentials
    launch_head(cfg, provider(cfg))
    head = role_session(aws, aws_iam.HEAD)
    remote = head_side_config(cfg, head)
    clear_ray_boto_caches()
    enforce_iam(monkeypatch)

    nodes = provider(remote)  # the head's autoscaler: launch, tag, list
    worker = launch_worker(remote, nodes)
    assert worker in nodes.non_terminated_nodes({TAG_RAY_NODE_KIND: NODE_KIND_WORKER})  # each autoscaler update lists first
    nodes.set_node_tags(worker, {TAG_RAY_NODE_STATUS: STATUS_UP_TO_DATE})  # the updater, once the node is set up
    # `ray exec --stop` runs `ray teardown ~/ray_bootstrap_config.yaml --workers-only` on the head
    ray_bootstrap(remote)
    nodes.terminate_nodes([worker])
    assert worker not in nodes.non_terminated_nodes({})
    s3 = head.client("s3")
    s3.put_object(Bucket=BUCKET, Key="infnet/tune/sweep/experiment_state.json", Body=b"{}")  # Tune's driver, MLflow
    assert denied(lambda: head.client("iam").create_role(RoleName="x", AssumeRolePolicyDocument="{}"))
    assert denied(lambda: head.client("ec2").create_security_group(GroupName="x", Description="x"))


def test_worker_role_writes_the_bucket_and_nothing_else(aws: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    aws_iam.setup(BUCKET, REGION, session=aws)
    aws.client("s3").create_bucket(Bucket="other-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    worker = role_session(aws, aws_iam.WORKER)
    enforce_iam(monkeypatch)

    s3 = worker.client("s3")
    key = "infnet/tune/sweep/trial_0/checkpoint_000000/model.pt"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"weights")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"weights"  # (moto checks listing as the
    # non-IAM action "s3:ListObjectsV2", so s3:ListBucket is checked by test_worker_policy_reaches_only_the_bucket)
    assert denied(lambda: s3.put_object(Bucket="other-bucket", Key="x", Body=b""))
    assert denied(lambda: worker.client("ec2").describe_instances())


def test_quota_check_under_moto_says_it_could_not_read(aws: boto3.session.Session, capsys: pytest.CaptureFixture[str]) -> None:
    """moto 5.2's Service Quotas answers only service code ``vpc``: for ``ec2`` the unreadable path is what runs."""
    assert aws_iam.main(["--check-quota", "--region", REGION]) == 0  # unknown is not reported as too low
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    for line, code in zip(out, ("L-3819A6DF", "L-DB2E81BA")):
        assert code in line and "could not be read (NoSuchResourceException" in line and line.endswith(code)


@pytest.mark.parametrize(("code", "value", "expected"), [
    ("L-3819A6DF", 0.0, "is 0 vCPUs: no GPU worker can start, so trials stay PENDING forever"),
    ("L-3819A6DF", 4.0, "is 4 vCPUs, under one g6.2xlarge (8)"),
    ("L-3819A6DF", 32.0, "32 vCPUs, room for 4 g6.2xlarge workers"),
    ("L-DB2E81BA", 0.0, "is 0 vCPUs: no on-demand GPU worker can start (gpu.yaml's workers are spot)"),
])
def test_quota_line_warns_when_not_one_worker_fits(code: str, value: float, expected: str) -> None:
    line = aws_iam.quota_line(aws_iam.Quota(code, aws_iam.QUOTAS[code], value), REGION)
    assert expected in line and code in line
    assert line.startswith("WARNING") == (value < 8)
    assert ("Request 32 vCPUs" in line) == (value < 8)
