"""S3 prefixes a team's pods may read: the URIs a team file names (LoRA adapters) and the grants of
stacks/tenancy.yaml, in one grammar. A prefix is a bucket and at least one key segment; no segment is `.` or `..`,
none holds `*` or `?` (a wildcard in the IAM policy built from it would widen the grant), and a prefix always ends
with `/`, so `s3://b/team` never matches `s3://b/team-other/`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

BUCKET = r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"
SEGMENT = r"[A-Za-z0-9!_.'()\-]+"
S3_PREFIX = re.compile(rf"s3://(?P<bucket>{BUCKET})/(?P<key>{SEGMENT}(?:/{SEGMENT})*)/?")


@dataclass(frozen=True)
class S3Prefix:
    bucket: str
    key: str            # ends with '/'

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def within(self, other: S3Prefix) -> bool:
        return self.bucket == other.bucket and self.key.startswith(other.key)

    @property
    def object_arn(self) -> str:
        """The objects under the prefix, for s3:GetObject."""
        return f"arn:aws:s3:::{self.bucket}/{self.key}*"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"


def parse_s3_prefix(uri: str) -> S3Prefix:
    m = S3_PREFIX.fullmatch(uri)
    if m is None or any(seg in (".", "..") for seg in m["key"].split("/")):
        raise ValueError(f"'{uri}' is not an S3 prefix: write s3://<bucket>/<prefix>/ — a bucket and at least one key segment, "
                         "no `.` or `..` segment, no `*` or `?`")
    return S3Prefix(m["bucket"], m["key"].rstrip("/") + "/")


def _check(uri: str) -> str:
    parse_s3_prefix(uri)
    return uri


S3Uri = Annotated[str, StringConstraints(pattern=r"^s3://", max_length=1024), AfterValidator(_check)]
