"""``state.url`` and ``api.accounts`` (issue 24): accepted, refused at file:line:column, and
a manifest without them meaning what it always meant."""

from __future__ import annotations

import json

import pytest

from runner import cli
from runner.core.errors import EXIT_OK, EXIT_USAGE
from runner.core.model import Account
from runner.core.redact import forget_secrets, redact
from runner.manifest import load_manifest
from tests.manifest.conftest import Write

HEAD = "version: 1\nname: t\n"
SHOTS = "shots:\n  - {id: a, prompt: p}\n"


def _validate(write: Write, text: str, capsys: pytest.CaptureFixture[str],
              *flags: str) -> tuple[int, str]:
    path = write(text)
    code = cli.main(["validate", *flags, str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out + err


# -- state.url ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["postgresql://team@db.example:5432/shots",
                                 "postgres://db.example/shots?sslmode=require",
                                 "postgresql:///shots?host=/var/run/postgresql"])
def test_a_postgresql_url_is_kept(url: str, write: Write) -> None:
    manifest = load_manifest(write(HEAD + f"state:\n  url: {url}\n" + SHOTS))
    assert manifest.store_url == url


@pytest.mark.parametrize("state", ["", "state: {}\n", "state:\n  url: null\n", "state:\n  url:\n"])
def test_no_url_keeps_the_embedded_store(state: str, write: Write) -> None:
    assert load_manifest(write(HEAD + state + SHOTS)).store_url is None


@pytest.mark.parametrize("url", ["postgresql://alice:hunter22@db.example/shots",
                                 "postgresql://alice@db.example/shots?password=hunter22",
                                 "mysql://alice:hunter22@db.example/shots"])
def test_a_password_in_the_url_is_refused_without_echo(
        url: str, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    forget_secrets()
    code, out = _validate(write, HEAD + f"state:\n  url: {url}\n" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert out.startswith("m.yaml:4:8: state.url: the URL holds a password")
    assert "PGPASSWORD" in out and "~/.pgpass" in out and "SHOTRUN_STORE_URL" in out
    assert "hunter22" not in out
    assert redact("login hunter22") == "login [REDACTED]"  # nothing printed later shows it
    forget_secrets()


def test_a_password_is_not_echoed_by_validate_json(write: Write,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + "state: {url: 'postgresql://a:hunter22@h/d'}\n" + SHOTS,
                          capsys, "--json")
    assert code == EXIT_USAGE
    assert "hunter22" not in out
    assert "state.url" in out
    forget_secrets()


@pytest.mark.parametrize(("url", "column"), [("sqlite:///state.db", 8),
                                             ("'/shared/team/state.db'", 8),
                                             ("''", 8)])
def test_another_kind_of_url_is_refused_where_it_stands(
        url: str, column: int, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + f"state:\n  url: {url}\n" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert out.startswith(f"m.yaml:4:{column}: state.url: ")
    assert "use a PostgreSQL URL such as postgresql://" in out


def test_an_unknown_state_key_is_refused(write: Write,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + "state:\n  uri: postgresql://h/d\n" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert out.startswith("m.yaml:4:3: state.uri: unknown key 'uri' (did you mean 'url'?)")


# -- api.accounts ------------------------------------------------------------------------------
TWO_ACCOUNTS = HEAD + """\
api:
  concurrency: 3
  submit_rate: 1.5
  accounts:
    - name: studio-a
      api_key_env: STUDIO_A_KEY
    - name: studio-b
      api_key_env: STUDIO_B_KEY
      concurrency: 8
      submit_rate: 0.5
""" + SHOTS


def test_accounts_take_api_limits_as_defaults(write: Write,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    manifest = load_manifest(write(TWO_ACCOUNTS))
    assert manifest.accounts == (Account("studio-a", "STUDIO_A_KEY", 3, 1.5),
                                 Account("studio-b", "STUDIO_B_KEY", 8, 0.5))
    assert manifest.api.api_key_env == "STUDIO_A_KEY"  # what reads one key reads a named one
    code, out = _validate(write, TWO_ACCOUNTS, capsys)
    assert (code, out) == (EXIT_OK, "m.yaml: valid\n")


def test_without_accounts_one_default_account_is_api_itself(write: Write) -> None:
    manifest = load_manifest(write(HEAD + "api:\n  api_key_env: MY_KEY\n  concurrency: 6\n"
                                   "  submit_rate: 3\n" + SHOTS))
    assert manifest.accounts == (Account("default", "MY_KEY", 6, 3.0),)
    assert manifest.api.named_accounts == ()
    bare = load_manifest(write(HEAD + SHOTS))
    assert bare.accounts == (Account("default", "SHOTRUN_API_KEY", 4, 2.0),)


def test_the_default_account_follows_the_provider_key_variable(write: Write) -> None:
    manifest = load_manifest(write(HEAD + "api:\n  provider: fal\n  base_url: emulator\n"
                                   + SHOTS))
    assert manifest.accounts[0].api_key_env == "FAL_KEY"


def test_duplicate_names_and_variables_are_located(write: Write,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + """\
api:
  accounts:
    - {name: a, api_key_env: KEY_A}
    - {name: b, api_key_env: KEY_A}
    - {name: a, api_key_env: KEY_C}
""" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert out.splitlines() == [
        "m.yaml:6:30: api.accounts[1].api_key_env: KEY_A already holds the key of account 'a' "
        "(line 5); one key is one account: give this account the variable that holds its own "
        "key, or remove it",
        "m.yaml:7:14: api.accounts[2].name: account name 'a' is already used on line 5; give "
        "each account its own name",
    ]


def test_a_repeat_is_found_beside_another_problem(write: Write,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + """\
api:
  accounts:
    - {name: a, api_key_env: KEY_A}
    - {name: a, api_key_env: KEY_B, concurrency: 0}
""" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert "m.yaml:6:14: api.accounts[1].name: account name 'a' is already used" in out
    assert "m.yaml:6:50: api.accounts[1].concurrency: 0 is less than 1" in out


@pytest.mark.parametrize(("entry", "where", "message"), [
    ("{name: Studio A, api_key_env: K}", "5:14: api.accounts[0].name",
     "'Studio A' is not valid: an account name is 1-64 lower-case letters"),
    ("{name: a, api_key_env: 'MY-KEY'}", "5:30: api.accounts[0].api_key_env",
     "give the NAME of an environment variable"),
    ("{name: a, api_key_env: K, concurrency: 1001}", "5:46: api.accounts[0].concurrency",
     "1001 is more than 1000"),
    ("{name: a, api_key_env: K, submit_rate: 0}", "5:46: api.accounts[0].submit_rate",
     "0 must be more than 0"),
    ("{name: a, api_key_env: K, key: x}", "5:33: api.accounts[0].key",
     "'key' would hold the API key; keys never go in the manifest"),
    ("{api_key_env: K}", "5:7: api.accounts[0]",
     "missing required key 'name'; give the account a short label"),
    ("{name: a}", "5:7: api.accounts[0]",
     "missing required key 'api_key_env'; give the NAME of the variable"),
])
def test_a_bad_account_is_refused_where_it_stands(entry: str, where: str, message: str,
                                                  write: Write,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + f"api:\n  accounts:\n    - {entry}\n" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert out.startswith(f"m.yaml:{where}: ")
    assert message in out


def test_an_empty_list_is_refused(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + "api:\n  accounts: []\n" + SHOTS, capsys)
    assert code == EXIT_USAGE
    assert out.startswith("m.yaml:4:13: api.accounts: is an empty list")


def test_a_key_written_as_an_account_variable_is_refused_without_echo(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    key = "sk-live0123456789abcdefABCDEF"
    text = HEAD + f"api:\n  accounts:\n    - {{name: a, api_key_env: {key}}}\n" + SHOTS
    code, out = _validate(write, text, capsys)
    assert code == EXIT_USAGE
    assert out.startswith("m.yaml:5:30: api.accounts[0].api_key_env: this looks like an API key")
    assert key not in out
    forget_secrets()


def test_api_key_env_beside_accounts_is_said_unused(write: Write,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, HEAD + "api:\n  api_key_env: OLD_KEY\n  accounts:\n"
                          "    - {name: a, api_key_env: KEY_A}\n" + SHOTS, capsys)
    assert code == EXIT_OK
    assert out.startswith("m.yaml:4:16: warning: api.api_key_env: not used: api.accounts")


KLING = HEAD + "api:\n  provider: kling\n  base_url: emulator\n  accounts:\n"


def test_each_kling_account_has_its_own_access_key(write: Write) -> None:
    manifest = load_manifest(write(KLING + "    - {name: a, api_key_env: KA}\n"
                                   "    - {name: b, api_key_env: KB, access_key_env: AB}\n"
                                   + SHOTS))
    assert [(a.api_key_env, a.access_key_env) for a in manifest.accounts] == [
        ("KA", None), ("KB", "AB")]  # None: the provider's own, KLING_ACCESS_KEY


def test_two_kling_accounts_on_one_access_key_are_refused(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _validate(write, KLING + "    - {name: a, api_key_env: KA}\n"
                          "    - {name: b, api_key_env: KB}\n"
                          "    - {name: c, api_key_env: KC, access_key_env: AC}\n"
                          "    - {name: d, api_key_env: KD, access_key_env: AC}\n" + SHOTS,
                          capsys)
    assert code == EXIT_USAGE
    assert out.splitlines() == [
        "m.yaml:8:7: api.accounts[1]: KLING_ACCESS_KEY (the default, as access_key_env is not "
        "given) already holds the access key of account 'a' (line 7); on the Kling API each "
        "account has its own access key: set access_key_env to the variable that holds this "
        "account's",
        "m.yaml:10:50: api.accounts[3].access_key_env: AC already holds the access key of "
        "account 'c' (line 9); on the Kling API each account has its own access key: set "
        "access_key_env to the variable that holds this account's",
    ]


def test_an_access_key_is_said_unused_off_kling(write: Write,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    text = KLING + "    - {name: a, api_key_env: KA, access_key_env: AA}\n" + SHOTS
    code, out = _validate(write, text, capsys, "--provider", "fal")
    assert code == EXIT_OK
    assert ("m.yaml:7:50: warning: api.accounts[0].access_key_env: not used: only the Kling "
            "API has access keys, and fal.ai renders") in out
    assert load_manifest(write(text), provider="gateway").accounts[0].access_key_env is None


def test_plan_json_of_a_manifest_without_the_new_keys_is_unchanged(
        write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(HEAD + SHOTS)
    assert cli.main(["plan", "--json", str(path)]) == EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert "accounts" not in json.dumps(document) and "store" not in document
