"""Reading the config file: YAML composed with its lines, ``${VAR}``, then every mistake at once.

A broker refuses to start on a bad config, so the errors are written for the person fixing
the file: each one names the file, the line, the key path and what to change
(``config/demo.yaml:14: accounts.111111111111.roles.Dev.max_session_duration: must be
between 3600 and 43200 (got 99999)``). To get there:

- YAML is *composed* (not just loaded) so every key path keeps its line, and duplicate keys,
  which PyYAML silently resolves to the last one, are caught. A syntax error stops
  everything (nothing after it can be read) and is explained, not quoted
  (:mod:`broker.config.yaml_errors`).
- ``${VAR}`` substitution runs on the parsed scalars, never on the text, so a secret in the
  environment can't smuggle YAML structure into the file.
- Validation is pydantic (:mod:`broker.config.schema`); its messages are rewritten into the
  file's vocabulary, and no message ever echoes a secret.
- Cross-checks (:mod:`broker.config.checks`) report alongside field errors.
- Checks that need another layer (a SAML metadata file's contents, IAM grammar) are passed in
  by the caller as ``checks`` or reported later through :meth:`ConfigError.problem`, so they
  read the same way while this package imports nothing above it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from broker.config.checks import cross_checks
from broker.config.fields import KeyPath, format_key_path, kind_of, line_of, shown
from broker.config.schema import BrokerConfig
from broker.config.yaml_errors import explain

_MAX_NODES = 200_000
"""Upper bound on YAML nodes visited, so alias chains ("billion laughs") can't hang start-up."""
_MAX_DEPTH = 64
"""Deepest nesting of mappings and lists (a deep policy condition needs about 12)."""


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One mistake in the file, located as precisely as the file allows."""

    file: str
    line: int | None
    key_path: str
    reason: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.key_path}: {self.reason}"
            if self.key_path
            else f"{where}: {self.reason}"
        )


class ConfigError(Exception):
    """The config can't be used; :attr:`problems` lists every mistake found, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    @classmethod
    def problem(cls, config: BrokerConfig, key_path: KeyPath, reason: str) -> ConfigError:
        """A mistake found after loading (e.g. IAM grammar), located in the file it came from."""
        file, line = config.locate(key_path)
        return cls(
            [Problem(file=file, line=line, key_path=format_key_path(key_path), reason=reason)]
        )


# --------------------------------------------------------------------------- YAML


_PLAIN_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})


class _Composer:
    """Turns a composed YAML node graph into plain data plus a key path -> line map."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[KeyPath, int] = {}
        self.problems: list[tuple[KeyPath, int | None, str]] = []
        self.broken: set[KeyPath] = set()
        """Values already reported as unreadable: pydantic's follow-up errors are noise."""
        self.budget = _MAX_NODES
        self.data: Any = None

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _Unreadable(
                node.start_mark.line + 1,
                f"more than {_MAX_NODES} values once aliases are expanded; refusing to load",
            )
        if len(path) > _MAX_DEPTH:
            # An alias can nest a collection in itself (``a: &x [*x]``): the composed
            # graph is then a cycle, which only this depth bound ends.
            raise _Unreadable(
                node.start_mark.line + 1,
                f"the file is nested more than {_MAX_DEPTH} levels deep (aliases expanded)",
            )
        if isinstance(node, yaml.CollectionNode) and node.tag not in _PLAIN_TAGS:
            # Collections are built here, not by PyYAML's constructors, so a tag would
            # otherwise be silently ignored: refuse it like SafeLoader refuses unknown ones.
            self.problems.append(
                (path, node.start_mark.line + 1, f"unsupported YAML tag {node.tag!r}")
            )
            self.broken.add(path)
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            out: list[Any] = []
            for index, item in enumerate(node.value):
                self.lines.setdefault((*path, index), item.start_mark.line + 1)
                out.append(self.build(item, (*path, index)))
            return out
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            reason = (
                exc.problem if isinstance(exc, yaml.MarkedYAMLError) and exc.problem else str(exc)
            )
            self.problems.append((path, node.start_mark.line + 1, f"cannot read value: {reason}"))
            self.broken.add(path)
            return None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    (path, line, "YAML merge keys (<<) are not supported; write the keys out")
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append((path, line, "keys must be plain text, not lists or mappings"))
                continue
            key = self._key(key_node)
            if not isinstance(key, str):
                key = key_node.value
                self.problems.append(
                    (
                        (*path, key),
                        line,
                        f'YAML reads this key as {_kind_word(key_node)}; quote it: "{key}"',
                    )
                )
            if key in first_line:
                self.problems.append(
                    ((*path, key), line, f"duplicate key (first defined at line {first_line[key]})")
                )
                continue
            first_line[key] = line
            self.lines.setdefault((*path, key), line)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _key(self, node: yaml.ScalarNode) -> object:
        """The key as YAML reads it; None when it can't be read (then reported as non-text)."""
        try:
            return self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError):
            return None


def _kind_word(node: yaml.ScalarNode) -> str:
    return {
        "tag:yaml.org,2002:int": "a number",
        "tag:yaml.org,2002:float": "a decimal number",
        "tag:yaml.org,2002:bool": "a boolean",
        "tag:yaml.org,2002:null": "null",
        "tag:yaml.org,2002:timestamp": "a date",
    }.get(node.tag, "a non-string value")


class _Unreadable(Exception):
    """The file is not YAML we can use at all; nothing past this point would make sense."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with nesting bounded where it composes, so the refusal keeps
    its line: its composer recurses per level, and a deep ``[[[...`` would otherwise end in
    a ``RecursionError`` (and every later walk over the data would recurse as deep)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"the file is nested more than {_MAX_DEPTH} levels deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _parse_yaml(text: str) -> _Composer:
    try:
        loader = _BoundedLoader(text)  # refuses unprintable characters at once
    except yaml.reader.ReaderError as exc:
        raise _unprintable(text, exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise _Unreadable(None, "the file is empty; it needs at least public_url and accounts")
        composer = _Composer(loader)
        composer.lines[()] = node.start_mark.line + 1
        composer.data = composer.build(node, ())
        return composer
    except yaml.MarkedYAMLError as exc:
        said = explain(exc, text)
        raise _Unreadable(said.line, said.reason) from None
    except yaml.reader.ReaderError as exc:
        raise _unprintable(text, exc) from None
    finally:
        loader.dispose()


def _unprintable(text: str, exc: yaml.reader.ReaderError) -> _Unreadable:
    """YAML allows no control characters but tab and line breaks; say where the first is."""
    line = text.count("\n", 0, exc.position) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return _Unreadable(line, f"character U+{code:04X} is not allowed in YAML")


# --------------------------------------------------------------------------- ${VAR}

_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(
    data: Any, path: KeyPath, environ: Mapping[str, str], missing: list[tuple[KeyPath, str]]
) -> Any:
    """Replace ``${VAR}``/``${VAR:-default}`` in string values; ``$${`` is a literal ``${``.

    Only the NAME grammar above is substituted, so IAM policy variables such as
    ``${aws:username}`` pass through untouched. Replacement text is not rescanned.
    """
    if isinstance(data, dict):
        return {k: _substitute(v, (*path, k), environ, missing) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, (*path, i), environ, missing) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name is None:
            return "${"
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append((path, name))
                return ""
            return default
        return value

    return _ENV_REF.sub(replace, data)


# --------------------------------------------------------------------------- cross-field


# --------------------------------------------------------------------------- pydantic errors


def _reason(error: Mapping[str, Any], loc: KeyPath) -> str:
    kind = error["type"]
    if kind == "config":
        return str(error["ctx"]["reason"])
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        name = str(loc[-1])
        close = difflib.get_close_matches(name, _known_keys(loc[:-1]), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {name!r}{hint}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping (got {kind_of(error['input'])})"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list (got {kind_of(error['input'])})"
    if kind == "bool_type":
        return f"must be true or false (got {kind_of(error['input'])})"
    if kind == "literal_error":
        got = error["input"]
        what = shown(got) if isinstance(got, str) else kind_of(got)
        return f"must be one of {error['ctx']['expected']} (got {what})"
    return f"invalid value ({error['msg']})"


def _known_keys(loc: KeyPath) -> list[str]:
    """Field names of the model at ``loc``, for "did you mean" hints."""
    current: Any = BrokerConfig
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return []
        if get_origin(current) is Annotated:
            current = get_args(current)[0]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


# --------------------------------------------------------------------------- loading


def _not_utf8(display: str, exc: UnicodeDecodeError) -> Problem:
    """Where the first byte that is not UTF-8 sits: its line, column and offset.

    Everything before it decoded, so the line is the count of newlines before it and the
    column counts the characters since the last one (1-based, as editors show them).
    """
    data = bytes(exc.object)
    before = data[: exc.start]
    line_start = before.rfind(b"\n") + 1
    column = len(before[line_start:].decode("utf-8")) + 1
    reason = f"not UTF-8 (byte 0x{data[exc.start]:02x} at column {column}, offset {exc.start})"
    return Problem(display, before.count(b"\n") + 1, "", reason)


ConfigCheck = Callable[[BrokerConfig], Iterable[tuple[KeyPath, str]]]
"""A check that needs the validated models and a layer above this package (e.g. the SAML
metadata parser): it yields (key path, reason) for each mistake, reported like the rest."""
DataCheck = Callable[[Mapping[str, Any]], Iterable[tuple[KeyPath, str]]]
"""A check of the file's (substituted) data that needs a layer above this package (IAM
policy grammar): it runs even when the schema refuses the file, so it must tolerate
malformed parts, as the cross-checks do."""


def load_config(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    checks: Sequence[ConfigCheck] = (),
    data_checks: Sequence[DataCheck] = (),
) -> BrokerConfig:
    """Read, substitute, validate. Raises :class:`ConfigError` listing every problem found.

    ``data_checks`` run with the cross-checks, on the data, whatever the schema says;
    ``checks`` run once the file validates (they need the models). All findings are
    reported together, in line order. A file that is not YAML at all is the one exception:
    its first syntax error is all there is to say.
    """
    display = str(path)
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(
            [Problem(display, None, "", f"cannot read the file ({exc.strerror})")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([_not_utf8(display, exc)]) from None

    try:
        parsed = _parse_yaml(text)
    except _Unreadable as exc:
        raise ConfigError([Problem(display, exc.line, "", exc.reason)]) from None
    lines = parsed.lines
    problems = [
        Problem(display, line, format_key_path(key_path), reason)
        for key_path, line, reason in parsed.problems
    ]
    if not isinstance(parsed.data, dict):
        reason = f"the file must be a mapping of keys (got {kind_of(parsed.data)})"
        raise ConfigError([*problems, Problem(display, 1, "", reason)])

    def add(key_path: KeyPath, reason: str) -> None:
        problems.append(
            Problem(display, line_of(lines, key_path), format_key_path(key_path), reason)
        )

    missing: list[tuple[KeyPath, str]] = []
    data = _substitute(parsed.data, (), os.environ if environ is None else environ, missing)
    for key_path, name in missing:
        add(
            key_path,
            f"environment variable {name} is not set "
            f"(set it, or give a default: ${{{name}:-default}}; write $${{ for a literal ${{, "
            "as a Regex rule's ${name} groups need)",
        )
    # Values already reported (unset variable, unreadable scalar) would only add noise.
    reported = parsed.broken | {key_path for key_path, _ in missing}

    base_dir = file.resolve().parent
    config: BrokerConfig | None = None
    try:
        config = BrokerConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc and loc[-1] == "[key]":
                loc = loc[:-1]
            if loc not in reported:
                add(loc, _reason(error, loc))
    for key_path, reason in cross_checks(data):
        add(key_path, reason)
    for data_check in data_checks:
        for key_path, reason in data_check(data):
            add(key_path, reason)
    if config is not None:
        for check in checks:
            for key_path, reason in check(config):
                add(key_path, reason)

    if problems or config is None:
        unique = list(dict.fromkeys(problems))
        unique.sort(key=lambda p: (p.line is not None, p.line or 0))
        raise ConfigError(unique)
    config._source = base_dir / file.name
    config._display = display
    config._lines = lines
    return config
