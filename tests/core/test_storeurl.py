"""The store URL: which one applies (flag, environment, manifest), its scheme, and that no
message built from it ever shows its password."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from runner.core.errors import UsageError
from runner.core.storeurl import (
    ENV_STORE_URL,
    MASK,
    StoreUrl,
    check_store_url,
    choose_store_url,
    has_password,
    redact_url,
    store_url,
    url_passwords,
)

FLAG_URL = "postgresql://flag@db.example/shots"
ENV_URL = "postgres://env@db.example/shots"
MANIFEST_URL = "postgresql://manifest@db.example/shots"


@pytest.mark.parametrize(("flag", "env", "manifest", "expected"), [
    (FLAG_URL, ENV_URL, MANIFEST_URL, FLAG_URL),
    (None, ENV_URL, MANIFEST_URL, ENV_URL),
    (None, None, MANIFEST_URL, MANIFEST_URL),
    (None, None, None, None),
    ("", ENV_URL, MANIFEST_URL, ENV_URL),  # an empty value is "not set" at its level
    ("", "", MANIFEST_URL, MANIFEST_URL),
    ("  ", " ", "", None),
])
def test_flag_then_environment_then_manifest(flag: str | None, env: str | None,
                                             manifest: str | None,
                                             expected: str | None) -> None:
    environ = {} if env is None else {ENV_STORE_URL: env}
    assert store_url(flag, environ, manifest) == expected


def test_the_choice_names_where_it_came_from() -> None:
    assert choose_store_url(None, {ENV_STORE_URL: ENV_URL}, None) == StoreUrl(
        ENV_URL, "SHOTRUN_STORE_URL")
    assert choose_store_url(FLAG_URL, {}, None) == StoreUrl(FLAG_URL, "--store")
    assert choose_store_url(None, {}, MANIFEST_URL) == StoreUrl(MANIFEST_URL, "state.url")


@pytest.mark.parametrize(("flag", "env", "manifest", "source"), [
    ("sqlite:///tmp/state.db", None, None, "--store"),
    (None, "mysql://u:hunter22@db.example/x", None, "SHOTRUN_STORE_URL"),
    (None, None, "/shared/state.db", "state.url"),
    ("POSTGRESQL://db.example/x", None, None, "--store"),  # libpq's designators are lower-case
])
def test_another_scheme_is_a_usage_error_naming_its_source(
        flag: str | None, env: str | None, manifest: str | None, source: str) -> None:
    environ = {} if env is None else {ENV_STORE_URL: env}
    with pytest.raises(UsageError) as caught:
        store_url(flag, environ, manifest)
    message = str(caught.value)
    assert message.startswith(f"{source}: ")
    assert "\n" not in message
    assert "not a PostgreSQL URL" in message and "postgresql://" in message
    assert "hunter22" not in message


def test_both_libpq_designators_pass_with_a_password_from_the_environment() -> None:
    url = "postgresql://alice:hunter22@db.example:5433/shots?sslmode=require"
    assert check_store_url(StoreUrl(url, ENV_STORE_URL)) == url
    assert check_store_url(StoreUrl("postgres://db.example/shots", "--store"))


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://alice:hunter22@db.example/shots",
     "postgresql://alice:***@db.example/shots"),
    ("postgresql://alice@db.example/shots?password=hunter22&sslmode=require",
     "postgresql://alice@db.example/shots?password=***&sslmode=require"),
    ("postgresql://db.example/shots?sslpassword=keypass", "postgresql://db.example/shots?"
     "sslpassword=***"),
    ("postgresql://alice:p%40ss@db.example/shots", "postgresql://alice:***@db.example/shots"),
    # typed without escaping: libpq would misread them; the whole password is hidden anyway
    ("postgresql://alice:p@ss/w?rd@db.example/shots", "postgresql://alice:***@db.example/shots"),
    ("postgresql://alice@[::1]:5432/shots", "postgresql://alice@[::1]:5432/shots"),
    ("postgresql://h1:5432,h2:5433/shots", "postgresql://h1:5432,h2:5433/shots"),
    ("postgresql:///shots?host=/var/run/postgresql", "postgresql:///shots?host=/var/run/"
     "postgresql"),
])
def test_redact_url_hides_each_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert has_password(url) == (shown != url)


def test_url_passwords_gives_them_as_written_and_decoded() -> None:
    assert url_passwords("postgresql://alice:p%40ss@h/db?password=two") == ["p%40ss", "p@ss",
                                                                           "two"]
    assert url_passwords("postgresql://alice:@h/db?password=") == []


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=12)


@given(user=_PLAIN, password=_TEXT, host=_PLAIN, db=_PLAIN,
       query=st.sampled_from(["", "?sslmode=require", "?application_name=x&sslmode=prefer"]))
def test_redact_url_never_shows_a_user_info_password(user: str, password: str, host: str,
                                                      db: str, query: str) -> None:
    url = f"postgresql://{user}:{password}@{host}/{db}{query}"
    assume(password not in f"postgresql://{user}:{MASK}@{host}/{db}{query}")
    shown = redact_url(url)
    assert password not in shown
    assert shown.endswith(f"@{host}/{db}{query}")
    assert has_password(url)


@given(password=_TEXT.filter(lambda text: "&" not in text), before=st.booleans(),
       name=st.sampled_from(["password", "sslpassword", "PASSWORD", "pass%77ord"]))
def test_redact_url_never_shows_a_query_password(password: str, before: bool,
                                                 name: str) -> None:
    others = "sslmode=require"

    def url_with(value: str) -> str:
        query = f"{others}&{name}={value}" if before else f"{name}={value}&{others}"
        return f"postgresql://alice@db.example/shots?{query}"

    assume(password not in url_with(MASK))
    assert redact_url(url_with(password)) == url_with(MASK)
    assert has_password(url_with(password))
