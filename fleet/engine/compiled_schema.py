"""JSON Schema (draft 2020-12) compiled to closures, for the keyword subset the Kubernetes schemas use.

`jsonschema` interprets a schema on every call: each node of a manifest goes through `descend`, `evolve` and a
`referencing` lookup per `$ref`, ~8 µs a node, which made schema validation a quarter of a 100-model plan. The
upstream strict schemas of Kubernetes 1.25–1.37 use only type, properties, additionalProperties, required, items,
enum, oneOf and $ref (plus annotations); the vendored CRD schemas add anyOf, minItems, minLength, minimum,
maximum and pattern. This module compiles exactly those keywords, once per schema node, into functions that
return nothing for a valid value, and reproduces jsonschema's errors for an invalid one: the same message, the
same failing keyword, value and instance, the same path, in the same order (tests/test_compiled_schema.py
checks it against jsonschema on every bundled object and thousands of mutations of them).

A schema using any other keyword raises `Unsupported` at compile time; the caller then uses jsonschema itself,
so a new keyword in a future schema is validated slowly, never skipped. `format` is an annotation here, as in
jsonschema without a format checker (how the plan has always validated).
"""

from __future__ import annotations

import numbers
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from jsonschema._utils import equal
from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

# Keywords that never produce an error: annotations, and `$defs`, which only holds targets of `$ref`.
ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "definitions", "$comment", "description", "title", "default",
                         "examples", "example", "deprecated", "readOnly", "writeOnly", "format"})


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not implement."""


class SchemaError:
    """One failed keyword: the fields of jsonschema's ValidationError that callers read."""

    __slots__ = ("_reversed_path", "instance", "message", "validator", "validator_value")

    def __init__(self, message: str, validator: str | None, validator_value: Any, instance: Any) -> None:
        self.message = message
        self.validator = validator
        self.validator_value = validator_value
        self.instance = instance
        self._reversed_path: list[str | int] = []

    @property
    def absolute_path(self) -> deque[str | int]:
        return deque(reversed(self._reversed_path))


Errors = list[SchemaError] | None
Check = Callable[[Any], Errors]


def _is_integer(x: Any) -> bool:
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def _under(errors: list[SchemaError], key: str | int) -> list[SchemaError]:
    for e in errors:
        e._reversed_path.append(key)
    return errors


class Compiler:
    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, Check]] = {}

    def compile(self, schema: Any, resolver: Resolver[Any]) -> Check:
        if schema is True:
            return lambda _: None
        if schema is False:
            return lambda x: [SchemaError(f"False schema does not allow {x!r}", None, None, x)]
        if not isinstance(schema, dict):
            raise Unsupported(f"schema of type {type(schema).__name__}")
        hit = self._memo.get(id(schema))
        if hit is not None:
            return hit[1]
        # Recursive schemas (a $ref back to an ancestor) call through this cell until the node is compiled.
        cell: list[Check] = []
        self._memo[id(schema)] = (schema, lambda x: cell[0](x))
        if "$id" in schema:
            resolver = resolver.in_subresource(DRAFT202012.create_resource(schema))
        checks = [c for keyword, value in schema.items() if (c := self._keyword(keyword, value, schema, resolver))]
        fn = _all(checks)
        cell.append(fn)
        self._memo[id(schema)] = (schema, fn)
        return fn

    def _keyword(self, keyword: str, value: Any, schema: dict[str, Any], resolver: Resolver[Any]) -> Check | None:
        if keyword in ANNOTATIONS or keyword.startswith("x-"):
            return None
        maker = getattr(self, "_kw_" + keyword.lstrip("$"), None)
        if maker is None:
            raise Unsupported(f"keyword {keyword!r}")
        return maker(value, schema, resolver)  # type: ignore[no-any-return]

    # -- keywords, each mirroring jsonschema/_keywords.py -------------------------------------------------

    def _kw_ref(self, ref: str, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        resolved = resolver.lookup(ref)
        return self.compile(resolved.contents, resolved.resolver)

    def _kw_type(self, types: str | list[str], schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        names = [types] if isinstance(types, str) else list(types)
        if any(n not in TYPES for n in names):
            raise Unsupported(f"type {types!r}")  # jsonschema decides what an unknown type name means
        tests = [TYPES[n] for n in names]
        reprs = ", ".join(repr(n) for n in names)

        def check(x: Any) -> Errors:
            for t in tests:
                if t(x):
                    return None
            return [SchemaError(f"{x!r} is not of type {reprs}", "type", types, x)]
        return check

    def _kw_properties(self, properties: dict[str, Any], schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        subs = {key: self.compile(sub, resolver) for key, sub in properties.items()}

        def check(x: Any) -> Errors:
            if not isinstance(x, dict):
                return None
            out: Errors = None
            for key, value in x.items():
                fn = subs.get(key)
                if fn is not None and (errs := fn(value)):
                    out = _under(errs, key) if out is None else out + _under(errs, key)
            return out
        return check

    def _kw_additionalProperties(self, ap: Any, schema: dict[str, Any], resolver: Resolver[Any]) -> Check | None:
        if "patternProperties" in schema:
            raise Unsupported("patternProperties")
        known = schema.get("properties", {})
        if ap is True or ap == {}:
            return None
        if ap is False:
            def closed(x: Any) -> Errors:
                if not isinstance(x, dict):
                    return None
                extras = [k for k in x if k not in known]
                if not extras:
                    return None
                extras.sort(key=str)
                verb = "was" if len(extras) == 1 else "were"
                message = f"Additional properties are not allowed ({', '.join(repr(e) for e in extras)} {verb} unexpected)"
                return [SchemaError(message, "additionalProperties", ap, x)]
            return closed
        values = self.compile(ap, resolver)

        def each(x: Any) -> Errors:
            if not isinstance(x, dict):
                return None
            out: Errors = None
            for key, value in x.items():
                if key not in known and (errs := values(value)):
                    out = _under(errs, key) if out is None else out + _under(errs, key)
            return out
        return each

    def _kw_required(self, required: list[str], schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        def check(x: Any) -> Errors:
            if not isinstance(x, dict):
                return None
            missing = [p for p in required if p not in x]
            return [SchemaError(f"{p!r} is a required property", "required", required, x) for p in missing] or None
        return check

    def _kw_items(self, items: Any, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        if "prefixItems" in schema or items is False:
            raise Unsupported("prefixItems / items: false")
        item = self.compile(items, resolver)

        def check(x: Any) -> Errors:
            if not isinstance(x, list):
                return None
            out: Errors = None
            for i, value in enumerate(x):
                if errs := item(value):
                    out = _under(errs, i) if out is None else out + _under(errs, i)
            return out
        return check

    def _kw_enum(self, enums: list[Any], schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        strings = frozenset(e for e in enums if isinstance(e, str))

        def check(x: Any) -> Errors:
            if isinstance(x, str) and x in strings:
                return None
            if all(not equal(each, x) for each in enums):
                return [SchemaError(f"{x!r} is not one of {enums!r}", "enum", enums, x)]
            return None
        return check

    def _of(self, subschemas: list[Any], resolver: Resolver[Any]) -> list[Check]:
        return [self.compile(s, resolver) for s in subschemas]

    def _kw_anyOf(self, subschemas: list[Any], schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        checks = self._of(subschemas, resolver)

        def check(x: Any) -> Errors:
            if any(not c(x) for c in checks):
                return None
            return [SchemaError(f"{x!r} is not valid under any of the given schemas", "anyOf", subschemas, x)]
        return check

    def _kw_oneOf(self, subschemas: list[Any], schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        checks = self._of(subschemas, resolver)

        def check(x: Any) -> Errors:
            valid = [i for i, c in enumerate(checks) if not c(x)]
            if not valid:
                return [SchemaError(f"{x!r} is not valid under any of the given schemas", "oneOf", subschemas, x)]
            if len(valid) > 1:
                reprs = ", ".join(repr(subschemas[i]) for i in [*valid[1:], valid[0]])
                return [SchemaError(f"{x!r} is valid under each of {reprs}", "oneOf", subschemas, x)]
            return None
        return check

    def _kw_minItems(self, n: int, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        return _too_short("minItems", n, list)

    def _kw_minLength(self, n: int, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        return _too_short("minLength", n, str)

    def _kw_minimum(self, m: float, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        def check(x: Any) -> Errors:
            if _is_number(x) and x < m:
                return [SchemaError(f"{x!r} is less than the minimum of {m!r}", "minimum", m, x)]
            return None
        return check

    def _kw_maximum(self, m: float, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        def check(x: Any) -> Errors:
            if _is_number(x) and x > m:
                return [SchemaError(f"{x!r} is greater than the maximum of {m!r}", "maximum", m, x)]
            return None
        return check

    def _kw_pattern(self, pattern: str, schema: dict[str, Any], resolver: Resolver[Any]) -> Check:
        search = _regex(pattern).search

        def check(x: Any) -> Errors:
            if isinstance(x, str) and not search(x):
                return [SchemaError(f"{x!r} does not match {pattern!r}", "pattern", pattern, x)]
            return None
        return check


def _too_short(keyword: str, n: int, kind: type[list[Any]] | type[str]) -> Check:
    """minItems / minLength: jsonschema's message for both."""
    message = "should be non-empty" if n == 1 else "is too short"

    def check(x: Any) -> Errors:
        if isinstance(x, kind) and len(x) < n:
            return [SchemaError(f"{x!r} {message}", keyword, n, x)]
        return None
    return check


def _regex(pattern: str) -> re.Pattern[str]:
    """Schemas carry Go (RE2) patterns; Python wants inline flags first, so `^(?i)x` becomes `(?i)^x`
    (jsonschema would raise re.error on the first value it checked against such a pattern)."""
    try:
        return re.compile(pattern)
    except re.error:
        if m := re.match(r"\^\(\?([aiLmsux]+)\)", pattern):
            return re.compile(f"(?{m.group(1)})^{pattern[m.end():]}")
        raise Unsupported(f"pattern {pattern!r}") from None


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda _: None
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> Errors:
        out: Errors = None
        for c in checks:
            if errs := c(x):
                out = errs if out is None else out + errs
        return out
    return check


class CompiledValidator:
    """`iter_errors(instance)` like a jsonschema validator's, from a compiled schema."""

    def __init__(self, schema: dict[str, Any], resolver: Resolver[Any]) -> None:
        # Everything reachable is compiled now, so an unsupported keyword anywhere raises here, not mid-plan.
        self._check = Compiler().compile(schema, resolver)

    def iter_errors(self, instance: Any) -> list[SchemaError]:
        return self._check(instance) or []
