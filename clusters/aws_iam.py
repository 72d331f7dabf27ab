"""One-time AWS setup for ``clusters/gpu.yaml``: the head's and the workers' instance profiles, and a quota check.

    python clusters/aws_iam.py --bucket my-bucket [--region us-west-2]   # creates or updates, then checks quotas
    python clusters/aws_iam.py --check-quota [--region us-west-2]        # only the GPU vCPU quotas

Run it with your own (admin) credentials, as ``ray up`` is run. Idempotent: a re-run rewrites the policies from
``clusters/aws/*.json`` (templates with ``${BUCKET}`` and ``${CLUSTER}``) and creates only what is missing:

- roles ``infnet-ray-head`` / ``infnet-ray-worker`` (trusted by EC2) with one inline policy each, and instance
  profiles of the same names, which ``gpu.yaml`` names (``IamInstanceProfile: {Name: ...}``; no account id);
- the head may do what Ray's autoscaler does on AWS (describe, launch, tag, terminate this cluster's nodes), pass
  the worker role (nothing else) to EC2, read the public ``/aws/service/*`` SSM parameters (EC2 resolves the
  ``resolve:ssm:`` ImageId with the launcher's permissions), and read/write the bucket;
- the workers may read/write the bucket, nothing else;
- the EC2 Spot service-linked role, which a spot launch through the API needs and the head may not create;
- the bucket, if it does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import boto3
from botocore.exceptions import ClientError

TEMPLATES = Path(__file__).resolve().parent / "aws"
HEAD = "infnet-ray-head"
WORKER = "infnet-ray-worker"
CLUSTER = "infnet-gpu"  # cluster_name in gpu.yaml: the head may terminate only instances Ray tagged with it
REGION = "us-west-2"
SPOT_SERVICE = "spot.amazonaws.com"  # its service-linked role: AWSServiceRoleForEC2Spot
WORKER_VCPUS = 8  # one g6.2xlarge, gpu.yaml's worker type
MAX_WORKERS = 4  # gpu.yaml's max_workers
QUOTAS = {  # Service Quotas, service code ec2: vCPUs of G and VT instances
    "L-3819A6DF": "All G and VT Spot Instance Requests",
    "L-DB2E81BA": "Running On-Demand G and VT instances",
}
SPOT_QUOTA = "L-3819A6DF"  # the one gpu.yaml's spot workers draw on


def render(template: str, bucket: str, cluster: str = CLUSTER) -> dict[str, Any]:
    """The policy document ``clusters/aws/<template>`` with its placeholders filled in."""
    text = (TEMPLATES / template).read_text()
    return json.loads(Template(text).substitute(BUCKET=bucket, CLUSTER=cluster))


def role_policies(bucket: str, cluster: str = CLUSTER) -> dict[str, dict[str, Any]]:
    """The inline policy of each role, by role name."""
    return {HEAD: render("head-policy.json", bucket, cluster), WORKER: render("worker-policy.json", bucket, cluster)}


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def ensure_role(iam: Any, name: str, trust: dict[str, Any]) -> str:
    """Create the role trusted by EC2, or reset the trust policy of an existing one; says which."""
    document = json.dumps(trust)
    try:
        iam.get_role(RoleName=name)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchEntity":
            raise
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=document, Description="infnet Ray cluster (clusters/aws_iam.py)")
        return f"role {name}: created"
    iam.update_assume_role_policy(RoleName=name, PolicyDocument=document)
    return f"role {name}: exists, trust policy updated"


def put_policy(iam: Any, role: str, policy: dict[str, Any]) -> str:
    """Write the role's inline policy (named as the role); overwrites the previous version."""
    iam.put_role_policy(RoleName=role, PolicyName=role, PolicyDocument=json.dumps(policy))
    return f"policy {role}/{role}: written"


def ensure_instance_profile(iam: Any, name: str) -> str:
    """Create the instance profile ``name`` holding exactly the role ``name`` (a profile holds at most one)."""
    try:
        roles = [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]]
        action = "exists"
    except ClientError as exc:
        if _error_code(exc) != "NoSuchEntity":
            raise
        iam.create_instance_profile(InstanceProfileName=name)
        roles, action = [], "created"
    for other in (r for r in roles if r != name):
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=other)
    if name not in roles:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
        action += f", role {name} added"
    return f"instance profile {name}: {action}"


def ensure_spot_role(iam: Any) -> str:
    """Create EC2 Spot's service-linked role if missing: else the head's first spot launch fails (AuthFailure)."""
    path = f"/aws-service-role/{SPOT_SERVICE}/"  # found by path: the role's name is AWS's (AWSServiceRoleForEC2Spot)
    roles = [r["RoleName"] for page in iam.get_paginator("list_roles").paginate(PathPrefix=path) for r in page["Roles"]]
    if roles:
        return f"service-linked role {roles[0]}: exists"
    role = iam.create_service_linked_role(AWSServiceName=SPOT_SERVICE)["Role"]["RoleName"]
    return f"service-linked role {role}: created"


def ensure_bucket(s3: Any, bucket: str, region: str) -> str:
    """Create the bucket in ``region`` unless it exists and is ours (a bucket of another account is an error)."""
    try:
        s3.head_bucket(Bucket=bucket)
        return f"bucket {bucket}: exists"
    except ClientError as exc:
        if _error_code(exc) not in ("404", "NoSuchBucket"):
            raise SystemExit(f"bucket {bucket}: not usable ({_error_code(exc)}): owned by another account? pick another name")
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **location)
    return f"bucket {bucket}: created in {region}"


def setup(bucket: str, region: str = REGION, cluster: str = CLUSTER, session: boto3.session.Session | None = None) -> list[str]:
    """Create or update everything ``gpu.yaml`` needs in IAM and S3; returns one line per thing done."""
    session = session or boto3.session.Session(region_name=region)
    iam = session.client("iam")
    trust = json.loads((TEMPLATES / "ec2-trust.json").read_text())
    done = [ensure_bucket(session.client("s3", region_name=region), bucket, region)]
    for role, policy in role_policies(bucket, cluster).items():
        done += [ensure_role(iam, role, trust), put_policy(iam, role, policy), ensure_instance_profile(iam, role)]
    done.append(ensure_spot_role(iam))
    return done


@dataclass(frozen=True)
class Quota:
    """One Service Quotas value; ``value`` is None when it could not be read (``error`` says why)."""

    code: str
    name: str
    value: float | None
    error: str = ""


def read_quotas(client: Any) -> list[Quota]:
    """The account's G and VT vCPU quotas (spot and on-demand) in the client's region."""
    quotas = []
    for code, name in QUOTAS.items():
        try:
            value = client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
            quotas.append(Quota(code, name, float(value)))
        except ClientError as exc:
            quotas.append(Quota(code, name, None, f"{_error_code(exc)}: {exc.response['Error'].get('Message', '')}"))
    return quotas


def quota_line(quota: Quota, region: str) -> str:
    """What a quota means for ``gpu.yaml``'s g6.2xlarge workers, with a WARNING when not even one fits."""
    url = f"https://{region}.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/{quota.code}"
    label = f"{quota.name} ({quota.code}, {region})"
    if quota.value is None:
        return f"{label}: could not be read ({quota.error}); see {url}"
    if quota.value < WORKER_VCPUS:
        why = "is 0 vCPUs" if quota.value == 0 else f"is {quota.value:g} vCPUs, under one g6.2xlarge ({WORKER_VCPUS})"
        effect = ("no GPU worker can start, so trials stay PENDING forever (the autoscaler's spot launches fail)"
                  if quota.code == SPOT_QUOTA else "no on-demand GPU worker can start (gpu.yaml's workers are spot)")
        return f"WARNING {label} {why}: {effect}. Request {WORKER_VCPUS * MAX_WORKERS} vCPUs ({MAX_WORKERS} x g6.2xlarge) at {url}"
    return f"{label}: {quota.value:g} vCPUs, room for {int(quota.value // WORKER_VCPUS)} g6.2xlarge workers"


def check_quotas(region: str, session: boto3.session.Session | None = None) -> tuple[list[str], bool]:
    """The quota lines, and whether the spot quota (the one gpu.yaml uses) fits at least one worker."""
    session = session or boto3.session.Session(region_name=region)
    quotas = read_quotas(session.client("service-quotas", region_name=region))
    spot = next(q for q in quotas if q.code == SPOT_QUOTA)
    return [quota_line(q, region) for q in quotas], spot.value is None or spot.value >= WORKER_VCPUS


def _name(pattern: str, what: str) -> Any:
    """An argparse type accepting only names that match ``pattern`` (they go into JSON and ARNs)."""
    def check(value: str) -> str:
        if not re.fullmatch(pattern, value):
            raise argparse.ArgumentTypeError(f"not a valid {what}: {value!r}")
        return value
    return check


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", type=_name(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "bucket name (no s3://)"),
                        help="S3 bucket for MLflow artifacts and tune.storage_path (created if missing)")
    parser.add_argument("--region", default=REGION, help=f"the region of gpu.yaml's provider (default {REGION})")
    parser.add_argument("--cluster-name", default=CLUSTER, type=_name(r"[A-Za-z0-9_.-]+", "cluster name"),
                        help=f"gpu.yaml's cluster_name (default {CLUSTER})")
    parser.add_argument("--check-quota", action="store_true", help="only print the G and VT vCPU quotas (no setup)")
    args = parser.parse_args(argv)
    if not args.bucket and not args.check_quota:
        parser.error("give --bucket (setup) or --check-quota")
    return args


def main(argv: list[str] | None = None) -> int:
    """Set up (unless --check-quota), then print the quotas; exit 1 when the spot quota fits no worker."""
    args = parse_args(argv)
    session = boto3.session.Session(region_name=args.region)
    if not args.check_quota:
        for line in setup(args.bucket, args.region, args.cluster_name, session):
            print(line)
        print("IAM changes take a few seconds to reach EC2: wait ~15 s before the first `ray up`.")
    lines, spot_ok = check_quotas(args.region, session)
    print("\n".join(lines))
    return 0 if spot_ok else 1


if __name__ == "__main__":
    sys.exit(main())
