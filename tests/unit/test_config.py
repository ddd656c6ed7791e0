"""Config loading: the demo loads, and each class of mistake reads `file:line: key: reason`."""

from __future__ import annotations

import base64
import os
import textwrap
from pathlib import Path

import pydantic
import pytest

from broker.app import load_broker_config
from broker.config import (
    BrokerConfig,
    ConfigError,
    Problem,
    check_processes,
    config_json_schema,
    format_key_path,
    load_config,
    several_processes_problems,
)
from broker.ids import account_of_key
from tests.saml_builders import keypair, metadata

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.yaml"

TOKEN_SECRET = base64.b64encode(b"k" * 32).decode()
ALICE_SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY01"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

MINIMAL = """\
public_url: http://127.0.0.1:8080
accounts:
  "111111111111":
    roles:
      Dev:
        trust_policy: {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a scratch folder so messages carry the short relative name ``c.yaml``."""
    monkeypatch.chdir(tmp_path)


def write(text: str, name: str = "c.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_broker_config(write(text), environ=environ or {})
    return str(info.value).splitlines()


def one_problem(text: str, environ: dict[str, str] | None = None) -> str:
    found = problems(text, environ)
    assert len(found) == 1, found
    return found[0]


def with_role(role_body: str) -> str:
    """MINIMAL with the Dev role's body replaced (indented under it)."""
    return MINIMAL.replace(
        '        trust_policy: {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}\n',
        textwrap.indent(textwrap.dedent(role_body), " " * 8),
    )


USER_FILE = f"""\
public_url: http://127.0.0.1:8080
accounts:
  "111111111111":
    users:
      alice:
        access_keys:
          - id: AKIAAAAAAAAAAAAAAAAA
            secret: {ALICE_SECRET}
        mfa_devices:
          - serial: "arn:aws:iam::111111111111:mfa/alice"
            totp_secret: {TOTP_SECRET}
"""


# --------------------------------------------------------------------------- the demo


def test_demo_config_loads_without_environment() -> None:
    config = load_config(DEMO, environ={})
    assert config.public_url == "http://127.0.0.1:8080"
    assert config.region == "us-east-1"
    assert config.state == "memory"
    assert config.token_keys == []
    assert config.source == DEMO
    dev, prod = config.accounts["111111111111"], config.accounts["222222222222"]
    assert (dev.alias, prod.alias) == ("dev", "prod")
    alice, bob = dev.users["alice"], dev.users["bob"]
    assert alice.access_keys[0].status == "Active"
    assert len(alice.access_keys[0].secret.get_secret_value()) == 40
    assert alice.mfa_devices[0].serial == "arn:aws:iam::111111111111:mfa/alice"
    assert len(alice.mfa_devices[0].totp_secret_bytes()) == 20
    assert bob.mfa_devices == []
    statement = alice.policies["assume-roles"]["Statement"][0]
    assert statement["Resource"] == [
        "arn:aws:iam::222222222222:role/UpdateApp",
        "arn:aws:iam::111111111111:role/Dev",
    ]
    assert dev.roles["Dev"].trust_policy["Statement"][0]["Principal"] == {
        "AWS": "arn:aws:iam::111111111111:root"
    }
    update = prod.roles["UpdateApp"]
    assert update.max_session_duration == 7200
    trust = update.trust_policy["Statement"][0]
    assert trust["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert trust["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert update.policies["app-bucket-read-write"]["Statement"][0]["Resource"] == [
        "arn:aws:s3:::prod-app-bucket",
        "arn:aws:s3:::prod-app-bucket/*",
    ]
    assert dev.roles["Dev"].managed_policies == ["ReadOnlyAccess"]
    assert "ReadOnlyAccess" in config.managed_policies


def test_demo_access_key_ids_are_unique_and_encode_their_account() -> None:
    config = load_config(DEMO, environ={})
    users = config.accounts["111111111111"].users.values()
    ids = [key.id for user in users for key in user.access_keys]
    assert len(ids) == len(set(ids)) == 2
    assert {account_of_key(key_id) for key_id in ids} == {"111111111111"}


def test_problem_after_loading_points_at_the_line_in_the_file() -> None:
    config = load_config(DEMO, environ={})
    lines = DEMO.read_text().splitlines()
    expected = lines.index("        max_session_duration: 7200") + 1
    path = ("accounts", "222222222222", "roles", "UpdateApp", "max_session_duration")
    error = ConfigError.problem(config, path, "malformed policy: example")
    assert error.problems == [
        Problem(
            file=str(DEMO),
            line=expected,
            key_path="accounts.222222222222.roles.UpdateApp.max_session_duration",
            reason="malformed policy: example",
        )
    ]
    assert str(error) == (
        f"{DEMO}:{expected}: accounts.222222222222.roles.UpdateApp.max_session_duration: "
        "malformed policy: example"
    )


def test_problem_for_a_path_not_in_the_file_uses_the_nearest_parent_line() -> None:
    config = load_config(write(MINIMAL), environ={})
    error = ConfigError.problem(config, ("accounts", "111111111111", "roles", "Dev", "nope"), "x")
    assert str(error) == "c.yaml:5: accounts.111111111111.roles.Dev.nope: x"


def test_problem_for_a_config_built_in_code_has_no_line() -> None:
    config = BrokerConfig.model_validate(
        {"public_url": "http://h", "accounts": {}}, context={"base_dir": None}
    )
    assert config.source is None
    assert str(ConfigError.problem(config, ("accounts",), "x")) == "<config>: accounts: x"


# --------------------------------------------------------------------------- YAML level


def test_yaml_syntax_error_reports_file_and_line() -> None:
    text = "public_url: http://h\naccounts:\n  a: [1, 2\n  b: 3\n"
    assert one_problem(text) == (
        "c.yaml:4: YAML syntax error: YAML expected ',' or ']' to go on with the '[' opened "
        "at line 3, column 6. Hint: close the '[', and quote values that contain ':' or ',' "
        "(the rest of the file is checked once this is fixed)"
    )


def test_duplicate_key_is_an_error_not_last_one_wins() -> None:
    text = MINIMAL + "public_url: http://evil.example\n"
    assert one_problem(text) == "c.yaml:7: public_url: duplicate key (first defined at line 1)"


def test_unquoted_account_id_must_be_quoted() -> None:
    text = MINIMAL.replace('"111111111111":', "111111111111:")
    assert one_problem(text) == (
        'c.yaml:3: accounts.111111111111: YAML reads this key as a number; quote it: "111111111111"'
    )


def test_unquoted_account_id_with_leading_zero_keeps_its_digits_in_the_message() -> None:
    # YAML 1.1 reads 012345670123 as an octal number: unquoted, the account would change.
    text = MINIMAL.replace('"111111111111":', "012345670123:")
    assert one_problem(text) == (
        'c.yaml:3: accounts.012345670123: YAML reads this key as a number; quote it: "012345670123"'
    )


def test_merge_keys_are_refused_but_anchors_work() -> None:
    text = """\
    public_url: http://h
    accounts:
      "111111111111":
        roles:
          A:
            trust_policy: &trust {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}
          B:
            trust_policy: *trust
          C:
            <<: {trust_policy: *trust}
    """
    assert problems(text) == [
        "c.yaml:9: accounts.111111111111.roles.C.trust_policy: required key is missing",
        "c.yaml:10: accounts.111111111111.roles.C: "
        "YAML merge keys (<<) are not supported; write the keys out",
    ]
    fixed = load_config(write(text.replace("<<: {trust_policy: *trust}", "trust_policy: *trust")))
    roles = fixed.accounts["111111111111"].roles
    assert roles["A"].trust_policy == roles["B"].trust_policy == roles["C"].trust_policy


def test_alias_expansion_bomb_is_refused() -> None:
    rows = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcde", "bcdef", strict=True):
        rows.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    found = one_problem("\n".join(rows) + "\n")
    assert found.endswith(": more than 200000 values once aliases are expanded; refusing to load")
    assert found.startswith("c.yaml:")


def test_unsafe_yaml_tags_are_refused() -> None:
    text = (
        MINIMAL
        + "region: !!python/object/apply:os.system [echo hi]\nstate: !!python/name:os.system ''\n"
    )
    assert problems(text) == [
        "c.yaml:7: region: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'",
        "c.yaml:8: state: cannot read value: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/name:os.system'",
    ]


def test_empty_file_non_mapping_missing_file_and_bad_encoding() -> None:
    assert one_problem("") == "c.yaml: the file is empty; it needs at least public_url and accounts"
    assert one_problem("- 1\n") == "c.yaml:1: the file must be a mapping of keys (got a list)"
    with pytest.raises(ConfigError) as info:
        load_config("absent.yaml", environ={})
    assert str(info.value) == "absent.yaml: cannot read the file (No such file or directory)"
    Path("latin.yaml").write_bytes(b"public_url: http://h\nregion: caf\xe9\n")
    with pytest.raises(ConfigError) as info:
        load_config("latin.yaml", environ={})
    assert str(info.value) == "latin.yaml:2: not UTF-8 (byte 0xe9 at column 12, offset 32)"


def test_bad_encoding_names_the_line_of_the_first_bad_byte() -> None:
    """Issue 15, finding 8: the line is known, so the message says it (and the byte)."""
    Path("bad.yaml").write_bytes(
        b"public_url: http://h\n# \xc3\xa9 is fine\naccounts:\n  x: \xff\xfe\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config("bad.yaml", environ={})
    assert str(info.value) == "bad.yaml:4: not UTF-8 (byte 0xff at column 6, offset 49)"


# --------------------------------------------------------------------------- fields


def test_max_session_duration_out_of_range() -> None:
    text = with_role("""\
        trust_policy: {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}
        max_session_duration: 99999
    """)
    assert one_problem(text) == (
        "c.yaml:7: accounts.111111111111.roles.Dev.max_session_duration: "
        "must be between 3600 and 43200 (got 99999)"
    )


def test_integer_of_the_wrong_type() -> None:
    text = MINIMAL + "limits: {max_body_bytes: yes}\n"
    assert one_problem(text) == (
        "c.yaml:7: limits.max_body_bytes: "
        "must be a whole number between 1024 and 1048576 (got a boolean)"
    )


def test_unknown_key_suggests_the_close_one() -> None:
    text = with_role("""\
        trust_policy: {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}
        max_sesion_duration: 7200
    """)
    assert one_problem(text) == (
        "c.yaml:7: accounts.111111111111.roles.Dev.max_sesion_duration: "
        "unknown key 'max_sesion_duration' (did you mean 'max_session_duration'?)"
    )


def test_unknown_key_without_close_match() -> None:
    assert (
        one_problem(MINIMAL + "frobnicate: 1\n") == "c.yaml:7: frobnicate: unknown key 'frobnicate'"
    )


def test_missing_required_keys() -> None:
    text = 'accounts:\n  "111111111111":\n    roles:\n      Dev: {description: x}\n'
    assert problems(text) == [
        "c.yaml:1: public_url: required key is missing",
        "c.yaml:4: accounts.111111111111.roles.Dev.trust_policy: required key is missing",
    ]


def test_account_id_must_be_twelve_digits() -> None:
    text = MINIMAL.replace('"111111111111":', '"12345":')
    assert one_problem(text) == (
        "c.yaml:3: accounts.12345: account IDs are exactly 12 digits, "
        "written as a quoted string (got '12345')"
    )


def test_names_paths_alias_and_region_patterns() -> None:
    text = """\
    public_url: http://h
    region: Mars-1
    accounts:
      "111111111111":
        alias: Dev
        users:
          "bad name": {}
          carol:
            path: team/
    """
    assert problems(text) == [
        "c.yaml:2: region: must be an AWS region name like us-east-1 (got 'Mars-1')",
        "c.yaml:5: accounts.111111111111.alias: must be 3-63 of a-z, 0-9 and - (got 'Dev')",
        'c.yaml:7: accounts.111111111111.users."bad name": '
        "names are 1-64 of letters, digits and +=,.@_- (got 'bad name')",
        "c.yaml:9: accounts.111111111111.users.carol.path: "
        "must be / or start and end with / (e.g. /team/) (got 'team/')",
    ]


def test_iam_names_are_ascii_only() -> None:
    text = MINIMAL + '    users:\n      "jos\u00e9": {}\n'
    assert one_problem(text) == (
        "c.yaml:8: accounts.111111111111.users.jos\u00e9: "
        "names are 1-64 of letters, digits and +=,.@_- (got 'jos\u00e9')"
    )


def test_access_key_id_status_and_secret() -> None:
    text = USER_FILE.replace("AKIAAAAAAAAAAAAAAAAA", "AKIA123").replace(
        f"secret: {ALICE_SECRET}", f"secret: {ALICE_SECRET[:-1]}\n            status: active"
    )
    found = problems(text)
    assert found == [
        "c.yaml:7: accounts.111111111111.users.alice.access_keys[0].id: "
        "access key IDs are AKIA + 16 of A-Z and 2-7 (got 'AKIA123')",
        "c.yaml:8: accounts.111111111111.users.alice.access_keys[0].secret: "
        "must be 40 characters of A-Z, a-z, 0-9, / and + (got 39 characters)",
        "c.yaml:9: accounts.111111111111.users.alice.access_keys[0].status: "
        "must be one of 'Active' or 'Inactive' (got 'active')",
    ]
    assert not any(ALICE_SECRET[:-1] in line for line in found)


def test_totp_secret_must_be_base32_of_16_bytes() -> None:
    text = USER_FILE.replace(TOTP_SECRET, "JBSWY3DPEHPK3PXP")
    assert one_problem(text) == (
        "c.yaml:11: accounts.111111111111.users.alice.mfa_devices[0].totp_secret: "
        "must decode to at least 16 bytes (decodes to 10)"
    )
    text = USER_FILE.replace(TOTP_SECRET, "not-base32-at-all-1")
    found = one_problem(text)
    assert found == (
        "c.yaml:11: accounts.111111111111.users.alice.mfa_devices[0].totp_secret: "
        "must be base32 (A-Z, 2-7), as authenticator apps show it"
    )


def test_token_keys_secrets_ids_and_rotation_order() -> None:
    good = base64.b64encode(b"n" * 32).decode()
    text = MINIMAL + textwrap.dedent(f"""\
        token_keys:
          - {{id: new, secret: "{good}"}}
          - {{id: old, secret: "{TOKEN_SECRET}"}}
    """)
    config = load_config(write(text), environ={})
    assert [(k.id, k.secret) for k in config.token_keys] == [("new", b"n" * 32), ("old", b"k" * 32)]
    short = base64.b64encode(b"s" * 16).decode()
    text = MINIMAL + textwrap.dedent(f"""\
        token_keys:
          - {{id: a, secret: "{short}"}}
          - {{id: a, secret: "not base64!"}}
          - {{id: "bad id", secret: "{TOKEN_SECRET}"}}
    """)
    hint = (
        'generate one with: python -c "import os,base64;'
        'print(base64.b64encode(os.urandom(32)).decode())"'
    )
    assert problems(text) == [
        f"c.yaml:8: token_keys[0].secret: must decode to at least 32 bytes (decodes to 16); {hint}",
        f"c.yaml:9: token_keys[1].secret: must be base64 of at least 32 random bytes; {hint}",
        "c.yaml:9: token_keys[1].id: token key ID 'a' is already used at token_keys[0].id",
        "c.yaml:10: token_keys[2].id: key IDs are 1-32 of A-Z, a-z, 0-9, _ and - (got 'bad id')",
    ]


def test_public_url_rules() -> None:
    config = load_config(write(MINIMAL.replace("8080", "8080/base/")), environ={})
    assert config.public_url == "http://127.0.0.1:8080/base"
    url_error = (
        "public_url: must be an http:// or https:// URL with a host and no query or fragment"
    )
    for bad in ("ftp://h", "http://h/?x=1", "http://h/#f", "http:///path", "http://h:99999"):
        found = one_problem(MINIMAL.replace("http://127.0.0.1:8080", bad))
        assert found == f"c.yaml:1: {url_error} (got {bad!r})"
    found = one_problem(MINIMAL.replace("http://", "https://admin:hunter2@"))
    assert found == (
        "c.yaml:1: public_url: "
        "must not contain user:password@ (the URL is shown to browsers and logs)"
    )
    assert "hunter2" not in found


def test_state_backends_and_relative_sqlite_path(tmp_path: Path) -> None:
    Path("conf").mkdir()
    config = load_config(write(MINIMAL + "state: sqlite:///data/../broker.db\n", "conf/c.yaml"))
    assert config.state == f"sqlite:///{tmp_path / 'conf' / 'broker.db'}"
    absolute = tmp_path / "abs.db"
    config = load_config(write(MINIMAL + f"state: sqlite:///{absolute}\n"), environ={})
    assert config.state == f"sqlite:///{absolute}"
    assert load_config(write(MINIMAL), environ={}).state == "memory"
    assert one_problem(MINIMAL + "state: memcached://:hunter2@h\n") == (
        "c.yaml:7: state: must be 'memory', 'sqlite:///path/to/file.db' or "
        "'redis://[user:password@]host:port/db' (got 'memcached://***@h')"
    )


@pytest.mark.parametrize(
    "state",
    [
        "redis://cache:6379/0",
        "rediss://:${REDIS_PASSWORD}@cache.internal:6380/2",
        "valkey://default:${REDIS_PASSWORD}@[::1]:6379",
        "valkeys://cache",
    ],
)
def test_redis_state_urls_load_with_the_password_from_the_environment(state: str) -> None:
    config = load_config(write(MINIMAL + f"state: {state}\n"), environ={"REDIS_PASSWORD": "pw"})
    assert config.state == state.replace("${REDIS_PASSWORD}", "pw")
    assert config.redis.key_prefix == "sts-broker:"
    assert (config.redis.connect_timeout_seconds, config.redis.timeout_seconds) == (0.5, 0.5)
    assert config.redis.max_connections == 50


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (
            "redis://default:${REDIS_PASSWORD}",  # the '@host' forgotten: the password is the port
            "invalid Redis URL: the port must be a number from 1 to 65535 (got text that is not "
            "a number; if it is a password, the '@host' after it is missing)",
        ),
        (
            "rediss://:${REDIS_PASSWORD}@cache:6380/db1",
            "invalid Redis URL: the database must be a number, as in redis://host:6379/0 "
            "(got 'db1')",
        ),
        (
            "redis://:${REDIS_PASSWORD}@:6379/0",
            "invalid Redis URL: it names no host (as in redis://host:6379/0)",
        ),
        (
            "redis://:hunt/er2@cache:6379/0",
            "invalid Redis URL: percent-encode '/', '?', '#' and '@' in the user name and password",
        ),
    ],
)
def test_bad_redis_urls_say_what_is_wrong_and_never_show_the_password(
    state: str, reason: str
) -> None:
    found = one_problem(MINIMAL + f"state: {state}\n", environ={"REDIS_PASSWORD": "hunter2"})
    assert found == f"c.yaml:7: state: {reason}"
    assert "hunter2" not in found and "hunt" not in found


def test_redis_section_sets_the_prefix_and_bounds_the_timeouts() -> None:
    text = MINIMAL + textwrap.dedent("""\
        state: redis://cache:6379/0
        redis:
          key_prefix: "team-a:"
          connect_timeout_seconds: ${CONNECT:-0.25}
          timeout_seconds: 2
          max_connections: 8
        """)
    redis = load_config(write(text), environ={}).redis
    assert (redis.key_prefix, redis.connect_timeout_seconds) == ("team-a:", 0.25)
    assert (redis.timeout_seconds, redis.max_connections) == (2.0, 8)
    bad = MINIMAL + textwrap.dedent("""\
        redis:
          key_prefix: "has space"
          connect_timeout_seconds: 0
          timeout_seconds: forever
          max_connections: 0
          timeout: 1
        """)
    assert problems(bad) == [
        "c.yaml:8: redis.key_prefix: key prefixes are 1-64 printable ASCII characters "
        "(got 'has space')",
        "c.yaml:9: redis.connect_timeout_seconds: must be between 0.01 and 30 seconds (got 0)",
        "c.yaml:10: redis.timeout_seconds: must be a number of seconds between 0.01 and 30 "
        "(got a string)",
        "c.yaml:11: redis.max_connections: must be between 1 and 10000 (got 0)",
        "c.yaml:12: redis.timeout: unknown key 'timeout' (did you mean 'timeout_seconds'?)",
    ]


def test_policy_documents_accept_json_strings_and_refuse_other_types() -> None:
    text = with_role("""\
        trust_policy: '{"Version": "2012-10-17", "Statement": []}'
        policies:
          broken: '{"Version": '
          listy: [1, 2]
    """)
    assert problems(text) == [
        # A policy given as a JSON string is checked too (at the line of its key).
        "c.yaml:6: accounts.111111111111.roles.Dev.trust_policy.Statement: malformed policy: "
        "Syntax errors in policy. Statement must be an object or a non-empty list of objects.",
        "c.yaml:8: accounts.111111111111.roles.Dev.policies.broken: "
        "is a string but not JSON (Expecting value at column 13)",
        "c.yaml:9: accounts.111111111111.roles.Dev.policies.listy: "
        "must be a policy document: a mapping or a JSON object (got a list)",
    ]
    config = load_config(write(with_role('trust_policy: \'{"Version": "2012-10-17"}\'\n')))
    assert config.accounts["111111111111"].roles["Dev"].trust_policy == {"Version": "2012-10-17"}


def test_tags_values_must_be_short_strings() -> None:
    text = with_role(f"""\
        trust_policy: {{Statement: {{Effect: Allow, Principal: "*", Action: "sts:*"}}}}
        tags:
          team: 1
          long: "{"v" * 257}"
          "{"k" * 129}": x
    """)
    assert problems(text) == [
        "c.yaml:8: accounts.111111111111.roles.Dev.tags.team: "
        "must be a string (got a number); quote it",
        "c.yaml:9: accounts.111111111111.roles.Dev.tags.long: "
        "tag values are at most 256 characters (got 257)",
        f"c.yaml:10: accounts.111111111111.roles.Dev.tags.{'k' * 129}: "
        f"tag keys are 1-128 characters (got '{'k' * 57}...')",
    ]


def test_description_limit_and_type_errors() -> None:
    text = with_role(f"""\
        trust_policy: {{Statement: {{Effect: Allow, Principal: "*", Action: "sts:*"}}}}
        description: "{"d" * 1001}"
        policies: []
        managed_policies: {{}}
    """)
    assert problems(text) == [
        "c.yaml:7: accounts.111111111111.roles.Dev.description: "
        f"descriptions are at most 1000 characters (got '{'d' * 57}...')",
        "c.yaml:8: accounts.111111111111.roles.Dev.policies: must be a mapping (got a list)",
        "c.yaml:9: accounts.111111111111.roles.Dev.managed_policies: "
        "must be a list (got a mapping)",
    ]


def test_oidc_providers_must_be_a_list() -> None:
    assert one_problem(MINIMAL + "    oidc_providers: {}\n") == (
        "c.yaml:7: accounts.111111111111.oidc_providers: must be a list (got a mapping)"
    )


# --------------------------------------------------------------------------- SAML

SAML_PROVIDERS = MINIMAL + "    saml_providers:\n"


def _saml_files() -> None:
    """IdP metadata and an SP key pair in the scratch folder (real documents, real keys)."""
    Path("idp.xml").write_bytes(metadata())
    Path("sp.key").write_bytes(keypair("sp").key_pem)
    Path("sp.crt").write_bytes(keypair("sp").cert_pem.encode())


def test_saml_provider_defaults_and_arn(tmp_path: Path) -> None:
    _saml_files()
    text = SAML_PROVIDERS + (
        "      Corp: {metadata_file: idp.xml}\n"
        "      okta.prod-1: {metadata_url: 'https://corp.okta.com/app/x/sso/saml/metadata',\n"
        "                    audiences: [urn:amazon:webservices], idp_initiated: true,\n"
        "                    allow_cbc_encryption: true, single_use: false}\n"
    )
    providers = load_config(write(text), environ={}).accounts["111111111111"].saml_providers
    corp, okta = providers["Corp"], providers["okta.prod-1"]
    assert corp.metadata_source == str(tmp_path / "idp.xml")
    assert (corp.audiences, corp.idp_initiated, corp.allow_cbc_encryption, corp.single_use) == (
        [],
        False,
        False,
        True,
    )
    assert corp.aws_audience is False
    assert corp.arn("111111111111", "Corp") == "arn:aws:iam::111111111111:saml-provider/Corp"
    assert okta.metadata_source == "https://corp.okta.com/app/x/sso/saml/metadata"
    assert (okta.aws_audience, okta.idp_initiated, okta.single_use) == (True, True, False)


def test_saml_provider_rules() -> None:
    _saml_files()
    cases = {
        "Corp: {}": "Corp: set exactly one of metadata_file and metadata_url",
        "Corp: {metadata_file: idp.xml, metadata_url: 'https://x.example/m'}": (
            "Corp: set exactly one of metadata_file and metadata_url"
        ),
        "Corp: {metadata_url: 'http://idp.example/m'}": "metadata_url: must use https://",
        "Corp: {metadata_file: gone.xml}": "metadata_file: cannot read the metadata file",
        "Corp: {metadata_file: c.yaml}": "metadata_file: ",
        "Corp: {metadata_file: idp.xml, audiences: [a, a]}": "audience 'a' is listed twice",
        "Corp: {metadata_file: idp.xml, audiences: [7]}": "audiences: must be a string",
        "Corp: {metadata_file: idp.xml, audiences: ['a b']}": "1-1024 printable ASCII",
        "Corp: {metadata_file: idp.xml, idp_initiated: 'yes'}": "must be true or false",
        "Corp: {metadata_file: idp.xml, single_us: true}": "unknown key 'single_us' (did you",
        "'Co rp': {metadata_file: idp.xml}": "SAML provider names are 1-128 of letters",
    }
    for fields, reason in cases.items():
        problem = one_problem(SAML_PROVIDERS + f"      {fields}\n")
        assert problem.startswith("c.yaml:8: accounts.111111111111.saml_providers."), problem
        assert reason in problem, problem
    Path("bad.xml").write_bytes(b"<md/>")
    problem = one_problem(SAML_PROVIDERS + "      Corp: {metadata_file: bad.xml}\n")
    assert "bad.xml: the metadata's root is not an md:EntityDescriptor" in problem


def test_saml_settings_defaults_bounds_and_sp_key_pair(tmp_path: Path) -> None:
    _saml_files()
    saml = load_config(write(MINIMAL), environ={}).saml
    assert saml.model_dump() == {
        "sp_key_file": None,
        "sp_cert_file": None,
        "max_response_bytes": 262144,
        "metadata_refresh_seconds": 3600,
        "max_assertion_lifetime_seconds": 300,
    }
    pair = load_config(
        write(MINIMAL + "saml: {sp_key_file: sp.key, sp_cert_file: sp.crt}\n"), environ={}
    ).saml
    assert (pair.sp_key_file, pair.sp_cert_file) == (
        str(tmp_path / "sp.key"),
        str(tmp_path / "sp.crt"),
    )
    Path("other.crt").write_bytes(keypair("other").cert_pem.encode())
    Path("ec.key").write_bytes(keypair("ec", "ec").key_pem)
    Path("ec.crt").write_bytes(keypair("ec", "ec").cert_pem.encode())
    for fields, reason in (
        ("max_response_bytes: 8191", "max_response_bytes: must be between 8192 and 1048576"),
        ("metadata_refresh_seconds: 59", "metadata_refresh_seconds: must be between 60"),
        ("max_assertion_lifetime_seconds: 59", "max_assertion_lifetime_seconds: must be between"),
        ("sp_key_file: sp.key", "set both sp_key_file and sp_cert_file, or neither"),
        ("sp_key_file: sp.key, sp_cert_file: other.crt", "does not hold the public key"),
        ("sp_key_file: sp.crt, sp_cert_file: sp.crt", "sp_key_file is not a PEM private key"),
        ("sp_key_file: sp.key, sp_cert_file: sp.key", "sp_cert_file is not a PEM certificate"),
        ("sp_key_file: ec.key, sp_cert_file: ec.crt", "must be an RSA key of 2048 to 8192"),
        ("sp_key_file: nope.key, sp_cert_file: sp.crt", "sp_key_file: file not found"),
    ):
        problem = one_problem(MINIMAL + f"saml: {{{fields}}}\n")
        assert problem.startswith("c.yaml:7: saml"), problem
        assert reason in problem, problem
        assert "PRIVATE KEY-----\n" not in problem and "MII" not in problem


# --------------------------------------------------------------------------- OIDC providers

OIDC = MINIMAL + "    oidc_providers:\n"


def test_oidc_provider_defaults_arn_and_inferred_kind() -> None:
    text = OIDC + (
        "      - url: https://accounts.google.com\n"
        "        client_ids: [123-abc.apps.googleusercontent.com]\n"
        "      - url: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/\n"
        "        client_ids: [app]\n"
        "      - url: https://token.actions.githubusercontent.com\n"
        "        client_ids: [sts.amazonaws.com]\n"
        "      - {url: 'http://127.0.0.1:9000/google', client_ids: [a], kind: google}\n"
        "      - {url: 'http://[::1]:9000/realm', client_ids: [a], single_use: true}\n"
    )
    providers = load_config(write(text), environ={}).accounts["111111111111"].oidc_providers
    google, cognito, github, fixture, generic = providers
    assert google.arn("111111111111") == (
        "arn:aws:iam::111111111111:oidc-provider/accounts.google.com"
    )
    assert (google.provider_kind, google.kind, google.max_token_age) == ("google", None, 86400)
    assert (google.jwks_uri, google.jwks_file, google.single_use) == (None, None, False)
    assert cognito.provider_kind == "cognito-user-pool"
    assert cognito.url.endswith("/")
    assert cognito.arn_path == "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
    assert github.provider_kind == "github-actions"
    assert (fixture.provider_kind, fixture.arn_path) == ("google", "127.0.0.1:9000/google")
    assert (generic.provider_kind, generic.single_use) == ("generic", True)


def test_oidc_provider_url_rules() -> None:
    for url, reason in (
        ("http://idp.example.com", "must use https:// (plain http is accepted only for"),
        ("https://idp.example.com/?x=1", "must not have a query or fragment"),
        ("https://idp.example.com/#f", "must not have a query or fragment"),
        ("https://u:p@idp.example.com", "must not contain user:password@"),
        ("ftp://idp.example.com", "must be an https:// URL with a host"),
        ("https://", "must be an https:// URL with a host"),
        ("https://idp.example.com/a b", "must be a URL without spaces or non-ASCII"),
    ):
        text = OIDC + f"      - {{url: '{url}', client_ids: [a]}}\n"
        assert one_problem(text).startswith(
            f"c.yaml:8: accounts.111111111111.oidc_providers[0].url: {reason}"
        )
    text = (
        OIDC
        + "      - {url: 'https://idp.example.com', client_ids: [a], jwks_uri: 'http://k.example.com/j'}\n"
    )
    assert "oidc_providers[0].jwks_uri: must use https://" in one_problem(text)


def test_oidc_provider_client_ids_kind_and_age() -> None:
    base = "      - {url: 'https://idp.example.com', "
    cases = {
        "client_ids: []}": "client_ids: must list 1 to 100 client IDs, as IAM does (got 0)",
        "client_ids: [a, a]}": "client_ids: client ID 'a' is listed twice",
        "client_ids: [7]}": "client_ids: must be a string (got a number); quote it",
        "client_ids: ['" + "x" * 256 + "']}": "client_ids: client IDs are 1-255 printable ASCII",
        "client_ids: a}": "client_ids: must be a list (got a string)",
        "client_ids: [a], kind: okta}": "kind: must be one of 'google', 'cognito-user-pool'",
        "client_ids: [a], max_token_age: 30}": "max_token_age: must be between 60 and 604800",
        "client_ids: [a], single_use: 'yes'}": "single_use: must be true or false (got a string)",
        "client_ids: [a], clientids: [b]}": "clientids: unknown key 'clientids' (did you mean",
    }
    for fields, reason in cases.items():
        problem = one_problem(OIDC + base + fields + "\n")
        assert f"oidc_providers[0].{reason}" in problem, problem
    many = "[" + ", ".join(f"c{i}" for i in range(101)) + "]"
    assert "(got 101)" in one_problem(OIDC + base + f"client_ids: {many}}}\n")


def test_oidc_jwks_file_is_relative_to_the_config_and_must_exist(tmp_path: Path) -> None:
    Path("keys.json").write_text('{"keys": []}', encoding="utf-8")
    text = (
        OIDC + "      - {url: 'https://idp.example.com', client_ids: [a], jwks_file: keys.json}\n"
    )
    provider = load_config(write(text), environ={}).accounts["111111111111"].oidc_providers[0]
    assert provider.jwks_file == str(tmp_path / "keys.json")
    missing = text.replace("keys.json", "gone.json")
    assert "oidc_providers[0].jwks_file: file not found: " in one_problem(missing)
    both = text.replace("keys.json}\n", "keys.json, jwks_uri: 'https://idp.example.com/k'}\n")
    assert one_problem(both) == (
        "c.yaml:8: accounts.111111111111.oidc_providers[0]: set jwks_uri or jwks_file, not both"
    )


def test_oidc_providers_are_unique_per_account_by_arn() -> None:
    text = OIDC + (
        "      - {url: 'https://idp.example.com/realm', client_ids: [a]}\n"
        "      - {url: 'https://idp.example.com/realm/', client_ids: [b]}\n"
        '  "222222222222":\n'
        "    oidc_providers:\n"
        "      - {url: 'https://idp.example.com/realm', client_ids: [a]}\n"
    )
    assert one_problem(text) == (
        "c.yaml:9: accounts.111111111111.oidc_providers[1].url: OIDC provider in account "
        "111111111111 'idp.example.com/realm' is already used at "
        "accounts.111111111111.oidc_providers[0].url"
    )


def test_oidc_settings_defaults_and_bounds() -> None:
    oidc = load_config(write(MINIMAL), environ={}).oidc
    assert oidc.model_dump() == {
        "jwks_ttl_seconds": 3600,
        "refresh_interval_seconds": 30,
        "last_known_good_seconds": 21600,
        "http_timeout_seconds": 5,
        "max_token_bytes": 20000,
        "max_token_lifetime_seconds": 86400,
    }
    for fields, reason in (
        ("jwks_ttl_seconds: 59", "jwks_ttl_seconds: must be between 60 and 86400 (got 59)"),
        ("refresh_interval_seconds: 0", "refresh_interval_seconds: must be between 1 and 3600"),
        ("last_known_good_seconds: -1", "last_known_good_seconds: must be between 0 and 604800"),
        ("http_timeout_seconds: 61", "http_timeout_seconds: must be between 1 and 60"),
        ("max_token_bytes: 20001", "max_token_bytes: must be between 256 and 20000"),
        ("max_token_lifetime_seconds: 299", "max_token_lifetime_seconds: must be between 300"),
        ("jwks_tl_seconds: 1", "jwks_tl_seconds: unknown key 'jwks_tl_seconds' (did you mean"),
    ):
        problem = one_problem(MINIMAL + f"oidc: {{{fields}}}\n")
        assert problem.startswith(f"c.yaml:7: oidc.{reason}"), problem
    assert one_problem(
        MINIMAL + "oidc: {refresh_interval_seconds: 120, jwks_ttl_seconds: 60}\n"
    ) == ("c.yaml:7: oidc: refresh_interval_seconds (120) must not exceed jwks_ttl_seconds (60)")


def test_limits_defaults_and_bounds() -> None:
    config = load_config(write(MINIMAL), environ={})
    assert (config.limits.max_body_bytes, config.limits.clock_skew_seconds) == (262144, 300)
    assert one_problem(MINIMAL + "limits: {clock_skew_seconds: 901}\n") == (
        "c.yaml:7: limits.clock_skew_seconds: must be between 0 and 900 (got 901)"
    )


def test_throttling_defaults_are_on_and_far_above_honest_use() -> None:
    throttling = load_config(write(MINIMAL), environ={}).throttling
    assert throttling.model_dump() == {
        "enabled": True,
        "principal": {"rate": 200.0, "burst": 400},
        "source_ip": {"rate": 1000.0, "burst": 2000},
        "actions": {},
        "signin": {"rate": 50.0, "burst": 500},
        "device": {"rate": 10.0, "burst": 100},
    }


def test_throttling_per_action_limits_and_decimal_rates() -> None:
    config = load_broker_config(
        write(
            MINIMAL
            + "throttling:\n"
            + "  principal: {rate: 0.5, burst: 2}\n"
            + "  actions:\n"
            + "    AssumeRoleWithSAML: {principal: {rate: 3, burst: 6}}\n"
            + "    GetCallerIdentity: {source_ip: {rate: '${GCI_RATE}', burst: 9}}\n"
        ),
        environ={"GCI_RATE": "2.5"},
    )
    throttling = config.throttling
    assert (throttling.principal.rate, throttling.principal.burst) == (0.5, 2)
    saml = throttling.actions["AssumeRoleWithSAML"]
    assert saml.principal is not None and saml.source_ip is None
    assert (saml.principal.rate, saml.principal.burst) == (3.0, 6)
    gci = throttling.actions["GetCallerIdentity"].source_ip
    assert gci is not None and gci.rate == 2.5


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ("{principal: {rate: 0, burst: 1}}", "principal.rate: must be between 0.001 and 1e+06"),
        ("{source_ip: {rate: 10, burst: 0}}", "source_ip.burst: must be between 1 and 10000000"),
        ("{signin: {rate: fast, burst: 1}}", "signin.rate: must be a number of calls a second"),
        ("{device: {rate: 1}}", "device.burst: required key is missing"),
        ("{enabled: 'no'}", "enabled: must be true or false (got a string)"),
        ("{principle: {rate: 1, burst: 1}}", "principle: unknown key 'principle' (did you mean"),
        ("{actions: {AssumeRole: {}}}", "actions.AssumeRole: give principal, source_ip or both"),
        ("{actions: {assume-role: {principal: {rate: 1, burst: 1}}}}", "actions.assume-role"),
    ],
)
def test_throttling_mistakes_point_at_the_line(section: str, reason: str) -> None:
    problem = one_problem(MINIMAL + f"throttling: {section}\n")
    assert problem.startswith(f"c.yaml:7: throttling.{reason}"), problem


def test_throttling_action_must_be_an_sts_action() -> None:
    text = MINIMAL + (
        "throttling:\n"
        "  actions:\n"
        "    AssumeRoleWithWebIdentity: {principal: {rate: 1, burst: 1}}\n"
        "    AssumeRoleWithSaml: {principal: {rate: 1, burst: 1}}\n"
    )
    assert one_problem(text) == (
        "c.yaml:10: throttling.actions.AssumeRoleWithSaml: 'AssumeRoleWithSaml' is not an STS "
        "action (did you mean 'AssumeRoleWithSAML'?)"
    )


def test_trusted_proxies_are_normalised_networks() -> None:
    config = load_config(
        write(MINIMAL + "trusted_proxies: [10.0.0.0/8, 192.168.1.7, '::1', 'fd00::/8']\n"),
        environ={},
    )
    assert config.trusted_proxies == ["10.0.0.0/8", "192.168.1.7/32", "::1/128", "fd00::/8"]
    assert load_config(write(MINIMAL), environ={}).trusted_proxies == []


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("10.1.2.3/8", "'10.1.2.3/8' has host bits set; did you mean 10.0.0.0/8?"),
        ("0.0.0.0/0", "0.0.0.0/0 trusts every address, so any client could choose its own"),
        ("'::/0'", "::/0 trusts every address"),
        ("proxy.internal", "must be an IP address or a CIDR network like 10.0.0.0/8"),
        ("10.0.0.0/33", "must be an IP address or a CIDR network"),
        ("8080", "must be a string (got a number)"),
    ],
)
def test_trusted_proxy_mistakes(entry: str, reason: str) -> None:
    problem = one_problem(MINIMAL + f"trusted_proxies:\n  - 127.0.0.1\n  - {entry}\n")
    assert problem.startswith(f"c.yaml:9: trusted_proxies[1]: {reason}"), problem


def test_web_settings_defaults_bounds_and_secret_cookie_key() -> None:
    web = load_config(write(MINIMAL), environ={}).web
    assert (web.session_idle_seconds, web.session_absolute_seconds, web.cookie_key) == (
        900,
        28800,
        None,
    )
    key = base64.b64encode(b"W3bC00k1e-key-material-32-bytes!").decode()
    config = load_config(
        write(MINIMAL + "web: {cookie_key: '${WEB_KEY}'}\n"), environ={"WEB_KEY": key}
    )
    assert config.web.cookie_key == b"W3bC00k1e-key-material-32-bytes!"
    assert key not in repr(config) and "W3bC00k1e" not in repr(config)
    for fields, reason in (
        ("session_idle_seconds: 59", "session_idle_seconds: must be between 60 and 86400 (got 59)"),
        ("session_absolute_seconds: 86401", "session_absolute_seconds: must be between 300 and"),
        ("session_idle_seconds: yes", "session_idle_seconds: must be a whole number between 60"),
        ("cookie_ky: x", "cookie_ky: unknown key 'cookie_ky' (did you mean 'cookie_key'?)"),
    ):
        problem = one_problem(MINIMAL + f"web: {{{fields}}}\n")
        assert problem.startswith(f"c.yaml:7: web.{reason}"), problem
    assert one_problem(
        MINIMAL + "web: {session_idle_seconds: 3600, session_absolute_seconds: 1800}\n"
    ) == (
        "c.yaml:7: web: session_idle_seconds (3600) must not exceed session_absolute_seconds (1800)"
    )
    short = base64.b64encode(b"S3cr3t-short").decode()
    problem = one_problem(MINIMAL + f"web: {{cookie_key: '{short}'}}\n")
    assert problem.startswith(
        "c.yaml:7: web.cookie_key: must decode to at least 32 bytes (decodes to 12)"
    )
    assert short not in problem and "S3cr3t" not in problem
    assert one_problem(MINIMAL + "web: {cookie_key: 'not base64!'}\n").startswith(
        "c.yaml:7: web.cookie_key: must be base64 of at least 32 random bytes"
    )
    schema = config_json_schema()["$defs"]["WebSettings"]["properties"]
    assert schema["session_idle_seconds"]["default"] == 900
    assert any(part.get("writeOnly") for part in schema["cookie_key"]["anyOf"])


# --------------------------------------------------------------------------- cross-field


def test_mfa_serial_must_be_in_its_own_account() -> None:
    text = USER_FILE.replace("iam::111111111111:mfa", "iam::222222222222:mfa")
    assert one_problem(text) == (
        "c.yaml:10: accounts.111111111111.users.alice.mfa_devices[0].serial: "
        "MFA device must be in account 111111111111, not 222222222222"
    )


def test_mfa_serial_must_be_an_mfa_arn() -> None:
    text = USER_FILE.replace("arn:aws:iam::111111111111:mfa/alice", "alice-phone")
    assert one_problem(text) == (
        "c.yaml:10: accounts.111111111111.users.alice.mfa_devices[0].serial: "
        "must be an MFA ARN: arn:aws:iam::ACCOUNT:mfa/NAME (got 'alice-phone')"
    )


def test_access_key_ids_are_unique_across_the_file() -> None:
    text = USER_FILE + (
        '  "222222222222":\n'
        "    users:\n"
        "      mallory:\n"
        f"        access_keys: [{{id: AKIAAAAAAAAAAAAAAAAA, secret: {ALICE_SECRET}}}]\n"
    )
    assert one_problem(text) == (
        "c.yaml:15: accounts.222222222222.users.mallory.access_keys[0].id: "
        "access key ID 'AKIAAAAAAAAAAAAAAAAA' is already used at "
        "accounts.111111111111.users.alice.access_keys[0].id"
    )


def test_referenced_managed_policy_must_exist() -> None:
    text = (
        with_role("""\
        trust_policy: {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}
        managed_policies: [ReadOnly, service-role/Lambda]
    """)
        + "managed_policies:\n  service-role/Lambda:\n"
        + '    {Version: "2012-10-17", Statement: {Effect: Allow, Action: "*", Resource: "*"}}\n'
    )
    assert one_problem(text) == (
        "c.yaml:7: accounts.111111111111.roles.Dev.managed_policies[0]: "
        "managed policy 'ReadOnly' is not defined in managed_policies"
    )


def test_account_aliases_are_unique() -> None:
    text = MINIMAL.replace('  "111111111111":\n', '  "111111111111":\n    alias: dev\n')
    text += '  "222222222222":\n    alias: dev\n'
    assert one_problem(text) == (
        "c.yaml:9: accounts.222222222222.alias: account alias 'dev' is already used at "
        "accounts.111111111111.alias"
    )


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = """\
    public_url: ftp://h
    accounts:
      "111111111111":
        roles:
          Dev:
            max_session_duration: 1
            managed_policies: [Missing]
    regoin: us-east-1
    """
    assert problems(text) == [
        "c.yaml:1: public_url: must be an http:// or https:// URL with a host and no query or "
        "fragment (got 'ftp://h')",
        "c.yaml:5: accounts.111111111111.roles.Dev.trust_policy: required key is missing",
        "c.yaml:6: accounts.111111111111.roles.Dev.max_session_duration: "
        "must be between 3600 and 43200 (got 1)",
        "c.yaml:7: accounts.111111111111.roles.Dev.managed_policies[0]: "
        "managed policy 'Missing' is not defined in managed_policies",
        "c.yaml:8: regoin: unknown key 'regoin' (did you mean 'region'?)",
    ]


# --------------------------------------------------------------------------- ${VAR}


def test_environment_substitution_defaults_and_escapes() -> None:
    text = MINIMAL.replace("http://127.0.0.1:8080", "${URL:-http://localhost:9000}") + (
        "region: ${REGION}\nlimits: {clock_skew_seconds: '${SKEW}'}\n"
    )
    text = text.replace(
        "        trust_policy:",
        '        description: "$${HOME} ${aws:username} ${EMPTY:-fallback} ${EMPTY}."\n'
        "        trust_policy:",
    )
    env = {"REGION": "eu-west-2", "SKEW": "60", "EMPTY": ""}
    config = load_config(write(text), environ=env)
    assert config.public_url == "http://localhost:9000"
    assert config.region == "eu-west-2"
    assert config.limits.clock_skew_seconds == 60
    role = config.accounts["111111111111"].roles["Dev"]
    assert role.description == "${HOME} ${aws:username} fallback ."


def test_missing_variable_names_key_and_variable() -> None:
    text = USER_FILE.replace(ALICE_SECRET, "${ALICE_SECRET}")
    assert one_problem(text) == (
        "c.yaml:8: accounts.111111111111.users.alice.access_keys[0].secret: environment variable "
        "ALICE_SECRET is not set (set it, or give a default: ${ALICE_SECRET:-default}; write "
        "$${ for a literal ${, as a Regex rule's ${name} groups need)"
    )


def test_substituted_value_cannot_inject_yaml_or_more_substitution() -> None:
    evil = "x\n  admin: true\n${OTHER}"
    trust = 'trust_policy: {Statement: {Effect: Allow, Principal: "*", Action: "sts:*"}}\n'
    text = with_role(trust + "description: ${D}\n")
    config = load_config(write(text), environ={"D": evil, "OTHER": "expanded"})
    assert config.accounts["111111111111"].roles["Dev"].description == evil


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "BROKER_TEST_REGION", "ap-southeast-2")
    config = load_config(write(MINIMAL + "region: ${BROKER_TEST_REGION}\n"))
    assert config.region == "ap-southeast-2"


# --------------------------------------------------------------------------- secrets


def test_secrets_never_appear_in_repr_or_errors() -> None:
    token = base64.b64encode(b"T0pS3cr3t-token-key-material!!!!").decode()
    text = USER_FILE + f'token_keys: [{{id: k, secret: "{token}"}}]\n'
    config = load_config(write(text), environ={})
    shown = repr(config) + str(config)
    for secret in (token, ALICE_SECRET, TOTP_SECRET, "T0pS3cr3t"):
        assert secret not in shown
    alice = config.accounts["111111111111"].users["alice"]
    assert alice.access_keys[0].secret.get_secret_value() == ALICE_SECRET

    bad_token = base64.b64encode(b"T0pS3cr3t-short").decode()
    bad_access = "S3cr3tS3cr3tS3cr3t/+S3cr3t"
    bad_totp = "MFRGGZDFMZTWQ2LK"  # valid base32, 10 bytes: too short
    text = (
        USER_FILE.replace(ALICE_SECRET, "${ALICE}").replace(TOTP_SECRET, "${TOTP}")
        + "token_keys: [{id: k, secret: '${TOKEN}'}]\npublic_url_typo: 1\n"
    )
    env = {"ALICE": bad_access, "TOTP": bad_totp, "TOKEN": bad_token}
    with pytest.raises(ConfigError) as info:
        load_config(write(text), environ=env)
    message = str(info.value)
    assert len(info.value.problems) == 4
    shown = message + repr(info.value.problems)
    for secret in (bad_token, bad_access, bad_totp, "T0pS3cr3t", "S3cr3t"):
        assert secret not in shown


def test_config_is_frozen() -> None:
    config = load_config(write(MINIMAL), environ={})
    with pytest.raises(pydantic.ValidationError):
        config.region = "eu-west-1"  # type: ignore[misc]


# --------------------------------------------------------------------------- helpers, schema


def test_key_path_format_quotes_ambiguous_keys() -> None:
    assert format_key_path(
        ("accounts", "111111111111", "users", "a.b", "access_keys", 0, "id")
    ) == ('accounts.111111111111.users."a.b".access_keys[0].id')
    assert format_key_path(()) == ""


def test_json_schema_describes_the_file() -> None:
    schema = config_json_schema()
    assert schema["required"] == ["public_url", "accounts"]
    assert schema["additionalProperties"] is False
    role = schema["$defs"]["RoleConfig"]["properties"]["max_session_duration"]
    assert (role["minimum"], role["maximum"], role["default"]) == (3600, 43200, 3600)
    key = schema["$defs"]["AccessKeyConfig"]["properties"]
    assert key["id"]["pattern"] == "^(?:AKIA[A-Z2-7]{16})$"
    assert key["secret"]["writeOnly"] is True
    assert schema["$defs"]["TokenKey"]["properties"]["secret"]["writeOnly"] is True


def test_several_workers_need_shared_state_and_configured_keys() -> None:
    demo = load_config(DEMO, environ={})
    check_processes(demo, 1)  # one worker shares nothing with anyone: all fine
    assert [path for path, _ in several_processes_problems(demo, 2)] == [
        ("state",),
        ("token_keys",),
        ("issuer", "keys"),
        ("saml", "sp_key_file"),
    ]
    with pytest.raises(ConfigError) as caught:
        check_processes(demo, 4)
    first = caught.value.problems[0]
    assert (first.key_path, first.line) == ("state", 23)
    assert first.reason.startswith("'memory' cannot be served with 4 workers")

    shared = load_config(
        write(
            MINIMAL
            + f"state: sqlite:///s.db\ntoken_keys:\n  - {{id: k1, secret: '{TOKEN_SECRET}'}}\n"
        ),
        environ={},
    )
    assert several_processes_problems(shared, 8) == []


def test_a_redis_ca_file_needs_a_tls_url_and_must_exist() -> None:
    Path("ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    plain = MINIMAL + "state: redis://cache:6379/0\nredis:\n  tls_ca_file: ca.pem\n"
    assert one_problem(plain) == (
        "c.yaml:9: redis.tls_ca_file: is set, but state is not a TLS Redis URL "
        "(rediss:// or valkeys://)"
    )
    missing = MINIMAL + "state: rediss://cache:6380/0\nredis:\n  tls_ca_file: nope.pem\n"
    assert one_problem(missing).startswith("c.yaml:9: redis.tls_ca_file: file not found: ")
    tls = MINIMAL + "state: valkeys://cache\nredis:\n  tls_ca_file: ca.pem\n"
    assert load_config(write(tls), environ={}).redis.tls_ca_file == str(Path("ca.pem").resolve())


def test_unprintable_characters_and_self_nesting_aliases_are_reported_with_their_line() -> None:
    """Both once escaped the loader as exceptions (found by tests/properties)."""
    Path("nul.yaml").write_bytes(b"public_url: http://h\nregion: a\x00b\n")
    with pytest.raises(ConfigError) as info:
        load_config("nul.yaml", environ={})
    assert str(info.value) == "nul.yaml:2: character U+0000 is not allowed in YAML"
    assert one_problem("public_url: http://h\na: &x [*x]\n").startswith(
        "c.yaml:2: the file is nested more than 64 levels deep"
    )
