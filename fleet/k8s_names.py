"""Names that become Kubernetes object names, namespaces, Secret keys (and the file each key is mounted as), label keys
and label values, checked the way the API server checks them — one place, used by every config field that reaches
the cluster, so a name `plan` accepts is a name `pulumi up` can create.

The rules are apimachinery's, as Kubernetes 1.33 (the stacks' default version) ships them:
kubernetes/kubernetes@v1.33.0:staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go
(= kubernetes/apimachinery@v0.33.0:pkg/util/validation/validation.go): IsDNS1123Label, IsDNS1123Subdomain,
IsDNS1035Label, IsConfigMapKey (with hasChDirPrefix), IsQualifiedName (label keys), IsValidLabelValue. They have not
changed across the versions the stacks may pin (1.25-1.37). A Secret volume item's `path` must also be a relative
path without a `..` element (pkg/apis/core/validation validateLocalDescendingPath): the stack mounts each key as a
file of its own name, so a valid key is a valid path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = f"{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = f"({QUALIFIED_NAME_FMT})?"
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63

# Matched with fullmatch: Go's `^…$` ends at the end of the text, Python's `$` also before a final newline.
_DNS1123_LABEL = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(DNS1035_LABEL_FMT)
_CONFIG_MAP_KEY = re.compile(CONFIG_MAP_KEY_FMT)
_QUALIFIED_NAME = re.compile(QUALIFIED_NAME_FMT)
_LABEL_VALUE = re.compile(LABEL_VALUE_FMT)


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters (it has {len(value)})"] if len(value) > limit else []


def dns1123_label(value: str) -> list[str]:
    """IsDNS1123Label: namespaces, most object names that are also host names."""
    errs = _max_len(value, DNS1123_LABEL_MAX)
    if not _DNS1123_LABEL.fullmatch(value):
        errs.append("must not contain dots" if _DNS1123_SUBDOMAIN.fullmatch(value) else
                    "must consist of lower case alphanumeric characters or '-', and start and end with an alphanumeric character")
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    """IsDNS1123Subdomain: Secret, ConfigMap, IngressClass and most other object names; host names."""
    errs = _max_len(value, DNS1123_SUBDOMAIN_MAX)
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append("must consist of lower case alphanumeric characters, '-' or '.', and start and end with an alphanumeric "
                    "character (each part between dots too)")
    return errs


def dns1035_label(value: str) -> list[str]:
    """IsDNS1035Label: Service names."""
    errs = _max_len(value, DNS1035_LABEL_MAX)
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append("must consist of lower case alphanumeric characters or '-', start with a letter and end with an "
                    "alphanumeric character")
    return errs


def config_map_key(value: str) -> list[str]:
    """IsConfigMapKey: a key of a Secret or ConfigMap (here also the file it is mounted as)."""
    errs = _max_len(value, DNS1123_SUBDOMAIN_MAX)
    if not _CONFIG_MAP_KEY.fullmatch(value):
        errs.append("must consist of alphanumeric characters, '-', '_' or '.' — no '/', so not a path")
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def qualified_name(value: str) -> list[str]:
    """IsQualifiedName: a label (or annotation) key, `[prefix/]name` with a DNS-1123 subdomain prefix."""
    parts = value.split("/")
    if len(parts) > 2:
        return ["must be a name with an optional DNS subdomain prefix and one '/' (e.g. 'example.com/my-label')"]
    errs = []
    if len(parts) == 2:
        prefix = parts[0]
        errs += ["prefix part must be non-empty"] if not prefix else [f"prefix part {e}" for e in dns1123_subdomain(prefix)]
    name = parts[-1]
    if not name:
        errs.append("name part must be non-empty")
    else:
        errs += [f"name part {e}" for e in _max_len(name, QUALIFIED_NAME_MAX)]
        if not _QUALIFIED_NAME.fullmatch(name):
            errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and start and end with an "
                        "alphanumeric character")
    return errs


def label_value(value: str) -> list[str]:
    """IsValidLabelValue: empty, or a qualified name's name part."""
    errs = _max_len(value, LABEL_VALUE_MAX)
    if not _LABEL_VALUE.fullmatch(value):
        errs.append("must be empty or consist of alphanumeric characters, '-', '_' or '.', and start and end with an "
                    "alphanumeric character")
    return errs


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def rule(check: Callable[[str], list[str]], what: str, fix: str = "", max_length: int | None = None) -> AfterValidator:
    """A pydantic validator that refuses what `check` refuses, naming the Kubernetes rule: `what` says what the value
    becomes ("a Secret key"), `fix` how to write one. `max_length`: a tighter bound than the rule's, where the stack
    appends suffixes to the name."""

    def validate(value: str) -> str:
        errs = check(value)
        if max_length is not None and len(value) > max_length:
            errs = [*errs, f"must be no more than {max_length} characters here (it has {len(value)})"]
        if errs:
            hint = f" — {fix}" if fix else ""
            raise ValueError(f"{_shown(value)} is not valid as {what}: {'; '.join(dict.fromkeys(errs))}{hint}")
        return value

    return AfterValidator(validate)


def schema(pattern: str, max_length: int) -> WithJsonSchema:
    """The JSON schema of a checked name, for editors (the validator is the rule)."""
    return WithJsonSchema({"type": "string", "pattern": f"^{pattern}$", "maxLength": max_length})


# The config fields' types. Each names what the value becomes in the cluster.
Namespace = Annotated[str, rule(dns1123_label, "a namespace (a DNS-1123 label)", "e.g. 'gateway'"),
                      schema(DNS1123_LABEL_FMT, DNS1123_LABEL_MAX)]
SecretObjectName = Annotated[str, rule(dns1123_subdomain, "a Secret name (a DNS-1123 subdomain)", "e.g. 'llm-example-com-tls'"),
                             schema(DNS1123_SUBDOMAIN_FMT, DNS1123_SUBDOMAIN_MAX)]
ObjectName = Annotated[str, rule(dns1123_subdomain, "an object name (a DNS-1123 subdomain)", "e.g. 'nginx'"),
                       schema(DNS1123_SUBDOMAIN_FMT, DNS1123_SUBDOMAIN_MAX)]
# The stack's own secrets: the Secret's name, and a `--path 'vllm-fleet:secrets.<name>'` segment, so no dots.
StackSecretName = Annotated[str, rule(dns1123_label, "a secret name (a Secret name without dots: `--path` splits on them)",
                                      "e.g. 'hf-token'"), schema(DNS1123_LABEL_FMT, DNS1123_LABEL_MAX)]
SecretKey = Annotated[str, rule(config_map_key, "a Secret key (mounted as a file of that name)",
                                "name the key inside the Secret, e.g. 'token' or 'api-key.txt', never a path"),
                      schema(CONFIG_MAP_KEY_FMT, DNS1123_SUBDOMAIN_MAX)]
LabelKey = Annotated[str, rule(qualified_name, "a label key", "e.g. 'example.com/tier' or 'tier'"),
                     schema(f"({DNS1123_SUBDOMAIN_FMT}/)?{QUALIFIED_NAME_FMT}", DNS1123_SUBDOMAIN_MAX + 1 + QUALIFIED_NAME_MAX)]
LabelValue = Annotated[str, rule(label_value, "a label value", "e.g. 'gpu-a'"), schema(LABEL_VALUE_FMT, LABEL_VALUE_MAX)]
