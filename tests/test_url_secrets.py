"""The password stays secret whatever form the URL takes (`?password=`, unencoded `:` or `@`
in the password, a password file), and a URL refaudit cannot use is exit 2 in one line that
does not repeat it."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from refaudit.db import describe, resolve_url, scrub, secrets
from refaudit.errors import ExitCode, UsageError

from tests.conftest import SAMPLE_SUITE
from tests.test_cli import assert_one_line_error, refaudit
from tests.test_operations import DB, TcpServer, sql
from tests.test_operations import tcp as tcp  # the TCP server with scram-sha-256 passwords

# a password with every character a URL gives meaning to; its pieces are distinctive, so a
# message that shows any part of it is caught
ODD_PASSWORD = "Kq7@Zr4:Wm9/Yx2?Vb5#Tn8"
PIECES = ("Kq7", "Zr4", "Wm9", "Yx2", "Vb5", "Tn8")
ROLE = "odd_auditor"


@pytest.fixture(scope="module")
def odd_role(tcp: TcpServer) -> TcpServer:
    escaped = ODD_PASSWORD.replace("'", "''")
    sql(tcp.admin(), f"CREATE ROLE {ROLE} LOGIN PASSWORD '{escaped}'")
    sql(tcp.admin(), f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {ROLE}")
    return tcp


def assert_nothing_shows_it(out: Path, *texts: str, password: str = ODD_PASSWORD) -> None:
    shown = [password, quote(password, safe=""), quote(password), *PIECES]
    for text in texts:
        for s in shown:
            assert s not in text, f"{s!r} in {text!r}"
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for s in shown:
                assert s.encode() not in data, f"{s!r} in {path}"


def run(tcp: TcpServer, tmp_path: Path, db: str | None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    args = [
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--out",
        str(tmp_path / "o"),
        "--history",
        str(tmp_path / "history.db"),
    ]
    return refaudit(*args, *(["--db", db] if db else []), env=env)


def test_password_as_a_query_parameter(tmp_path: Path, odd_role: TcpServer) -> None:
    url = f"postgresql://{ROLE}@127.0.0.1:{odd_role.port}/{DB}?password={quote(ODD_PASSWORD)}"
    proc = run(odd_role, tmp_path, url)
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert doc["run"]["database"] == f"postgresql://{ROLE}:***@127.0.0.1:{odd_role.port}/{DB}"
    assert_nothing_shows_it(tmp_path, proc.stdout, proc.stderr)


def test_json_summary_and_sql_show_the_url_masked(tmp_path: Path, odd_role: TcpServer) -> None:
    url = f"postgresql://{ROLE}:{quote(ODD_PASSWORD, safe='')}@127.0.0.1:{odd_role.port}/{DB}"
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--out", str(tmp_path / "o"), "--no-history",
        "--db", url, "--format", "json", "-vv",
    )  # fmt: skip
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["database"] == f"postgresql://{ROLE}:***@127.0.0.1:{odd_role.port}/{DB}"
    assert "SQL: " in proc.stderr
    assert_nothing_shows_it(tmp_path, proc.stdout, proc.stderr)
    wrong = url.replace("Kq7", "Qq7")  # an error in JSON too
    failed = refaudit("run", "--suite", SAMPLE_SUITE, "--db", wrong, "--format", "json",
                      "--out", str(tmp_path / "w"))  # fmt: skip
    assert json.loads(failed.stdout)["exit_code"] == ExitCode.RUNTIME == failed.returncode
    assert "password authentication failed" in json.loads(failed.stdout)["error"]
    wrong_password = ODD_PASSWORD.replace("Kq7", "Qq7")
    assert_nothing_shows_it(tmp_path, failed.stdout, failed.stderr, password=wrong_password)


def test_wrong_password_as_a_query_parameter(tmp_path: Path, odd_role: TcpServer) -> None:
    wrong = "Qz3:" + ODD_PASSWORD[::-1]
    url = f"postgresql://{ROLE}@127.0.0.1:{odd_role.port}/{DB}?password={quote(wrong)}"
    proc = run(odd_role, tmp_path, url, env={"DATABASE_URL": url})  # in the environment too
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "password authentication failed" in line
    assert_nothing_shows_it(tmp_path, proc.stdout, proc.stderr, password=wrong)


def test_unencoded_colon_slash_and_question_mark_in_the_password(
    tmp_path: Path, odd_role: TcpServer
) -> None:
    sql(odd_role.admin(), "CREATE ROLE colon_auditor LOGIN PASSWORD 'Kq7:Zr4/Wm9?Yx2'")
    sql(odd_role.admin(), "GRANT SELECT ON ALL TABLES IN SCHEMA public TO colon_auditor")
    url = f"postgresql://colon_auditor:Kq7:Zr4/Wm9?Yx2@127.0.0.1:{odd_role.port}/{DB}"
    proc = run(odd_role, tmp_path, None, env={"DATABASE_URL": url})
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    assert_nothing_shows_it(tmp_path, proc.stdout, proc.stderr, password="Kq7:Zr4/Wm9?Yx2")


def test_unencoded_at_in_the_password_is_exit_2(tmp_path: Path, odd_role: TcpServer) -> None:
    for url in (
        f"postgresql://{ROLE}:{ODD_PASSWORD}@127.0.0.1:{odd_role.port}/{DB}",
        f"postgresql://{ROLE}:Kq7@Zr4@127.0.0.1:{odd_role.port}/{DB}",
    ):
        proc = run(odd_role, tmp_path, url)
        line = assert_one_line_error(proc, ExitCode.USAGE)
        assert "percent-encode" in line and "%40" in line
        assert_nothing_shows_it(tmp_path, proc.stdout, proc.stderr)
        assert not (tmp_path / "o").exists()  # refused before anything was written
        with pytest.raises(UsageError):
            resolve_url(url)
        assert ODD_PASSWORD in secrets(url) or "Kq7@Zr4" in secrets(url)


def test_password_from_a_password_file(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, odd_role: TcpServer
) -> None:
    passfile = tmp_path_factory.mktemp("secret") / "pgpass"
    escaped = ODD_PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"127.0.0.1:{odd_role.port}:*:{ROLE}:{escaped}\n")
    passfile.chmod(0o600)
    url = f"postgresql://{ROLE}@127.0.0.1:{odd_role.port}/{DB}"
    via_param = run(odd_role, tmp_path / "a", f"{url}?passfile={quote(str(passfile))}")
    via_env = run(odd_role, tmp_path / "b", url, env={"PGPASSFILE": str(passfile)})
    for proc in (via_param, via_env):
        assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
        assert_nothing_shows_it(tmp_path, proc.stdout, proc.stderr)
    # and a message that somehow held it would be scrubbed
    message = f"failed: {ODD_PASSWORD}"
    assert ODD_PASSWORD not in scrub(message, f"{url}?passfile={quote(str(passfile))}")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://u:Kq7Zr4@127.0.0.1:notaport/x", "is not a database URL"),
        ("postgresql://u:Kq7Zr4@[::1/x", "is not a database URL"),
        ("postgresql://u:Kq7Zr4@127.0.0.1:99999/x", "port 99999"),
        ("postgresql://u:Kq7Zr4@127.0.0.1:5432/x?Wm9=1", 'invalid connection option "Wm9"'),
        ("postgresql://u:Kq7Zr4@127.0.0.1:5432/x?pasword=Wm9", '"pasword"'),
        ("host=127.0.0.1 password=Kq7Zr4", "is not a database URL"),
    ],
)
def test_malformed_url_is_exit_2_in_one_line(tmp_path: Path, url: str, says: str) -> None:
    proc = refaudit("run", "--suite", SAMPLE_SUITE, "--db", url, "--out", str(tmp_path / "o"))
    line = assert_one_line_error(proc, ExitCode.USAGE)
    assert says in line
    assert "Kq7Zr4" not in proc.stderr + proc.stdout
    assert not (tmp_path / "o").exists()


def test_describe_hides_every_form_of_the_password() -> None:
    for raw in (
        "postgresql://u:Kq7Zr4@h/db",
        "postgresql://u@h/db?password=Kq7Zr4",
        "postgresql://u:other@h/db?password=Kq7Zr4",
    ):
        shown = describe(resolve_url(raw))
        assert "Kq7Zr4" not in shown and "other" not in shown
        assert shown == "postgresql://u:***@h/db"
    # the password given as a parameter is the one connected with
    assert resolve_url("postgresql://u@h/db?password=Kq7Zr4").password == "Kq7Zr4"


# libpq's parameters that carry a secret (those PQconndefaults() marks with dispchar "*", and
# PostgreSQL 18's OAuth client secret); every other one (passfile, sslkey, ...) is a path or a
# setting and is shown as given
SSL_PASSWORD = "Hj3Lp6Ns9Rt"


def assert_no_ssl_password(out: Path, *texts: str, secret: str = SSL_PASSWORD) -> None:
    for text in texts:
        assert secret not in text, text
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"the ssl password in {path}"


def test_sslpassword_is_masked_in_every_output(tmp_path: Path, odd_role: TcpServer) -> None:
    base = f"postgresql://{ROLE}:{quote(ODD_PASSWORD, safe='')}@127.0.0.1:{odd_role.port}/{DB}"
    shown = f"postgresql://{ROLE}:***@127.0.0.1:{odd_role.port}/{DB}?sslpassword=***"
    first = run(odd_role, tmp_path, f"{base}?sslpassword={SSL_PASSWORD}")
    assert first.returncode == ExitCode.VIOLATIONS, first.stderr
    out = tmp_path / "o"
    assert json.loads((out / "results.json").read_text())["run"]["database"] == shown
    for name in ("junit.xml", "report.html"):
        assert (
            shown.replace("&", "&amp;") in (out / name).read_text()
            or shown in (out / name).read_text()
        ), name
    assert_no_ssl_password(tmp_path, first.stdout, first.stderr)

    # another ssl password for the same database: the same history, nothing of either shown
    other = "Bw5Dk8Fq2"
    again = run(odd_role, tmp_path, f"{base}?sslpassword={other}")
    assert again.returncode == ExitCode.VIOLATIONS, again.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["run"]["database"] == shown
    assert doc["history"]["runs"] == 2 and doc["history"]["previous"] is not None
    assert_no_ssl_password(tmp_path, again.stdout, again.stderr, secret=other)
    assert_no_ssl_password(tmp_path, secret=SSL_PASSWORD)


def test_a_history_that_holds_an_ssl_password_is_masked_and_continued(
    tmp_path: Path, odd_role: TcpServer
) -> None:
    """A history file written before the ssl password was masked: the run masks the stored
    URL in place and continues its history."""
    base = f"postgresql://{ROLE}:{quote(ODD_PASSWORD, safe='')}@127.0.0.1:{odd_role.port}/{DB}"
    first = run(odd_role, tmp_path, base)
    assert first.returncode == ExitCode.VIOLATIONS, first.stderr
    import sqlite3

    history = tmp_path / "history.db"
    clear = f"postgresql://{ROLE}:***@127.0.0.1:{odd_role.port}/{DB}?sslpassword={SSL_PASSWORD}"
    with sqlite3.connect(history) as db:
        db.execute("UPDATE runs SET database = ?", (clear,))
        db.execute("UPDATE last_keys SET database = ?", (clear,))
    db.close()
    again = run(odd_role, tmp_path, f"{base}?sslpassword=Bw5Dk8Fq2")
    assert again.returncode == ExitCode.VIOLATIONS, again.stderr
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert doc["history"]["runs"] == 2 and doc["history"]["previous"] is not None
    assert doc["history"]["new"] == 0 and doc["history"]["fixed"] == 0
    assert_no_ssl_password(tmp_path, again.stdout, again.stderr)


def test_sslpassword_is_masked_in_errors_and_tracebacks(
    tmp_path: Path, odd_role: TcpServer
) -> None:
    wrong = f"postgresql://{ROLE}:wrong@127.0.0.1:{odd_role.port}/{DB}?sslpassword={SSL_PASSWORD}"
    proc = run(odd_role, tmp_path, wrong)
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "sslpassword=***" in line and "password authentication failed" in line
    assert_no_ssl_password(tmp_path, proc.stdout, proc.stderr)
    # --debug prints the traceback, scrubbed too
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--debug",
        "--db",
        wrong,
        "--out",
        str(tmp_path / "d"),
        "--no-history",
    )
    assert proc.returncode == ExitCode.RUNTIME and "Traceback" in proc.stderr, proc.stderr
    assert_no_ssl_password(tmp_path, proc.stdout, proc.stderr)
    # given in DATABASE_URL, and to apply
    plan = tmp_path / "plan.sql"
    plan.write_text("BEGIN;\nSELECT 1/0;\nCOMMIT;\n")
    good = wrong.replace(":wrong@", f":{quote(ODD_PASSWORD, safe='')}@")
    for env in ({"DATABASE_URL": good}, {"DATABASE_URL": wrong}):
        proc = refaudit("apply", str(plan), env=env)
        line = assert_one_line_error(proc, ExitCode.RUNTIME)
        assert "sslpassword=***" in line
        assert_no_ssl_password(tmp_path, proc.stdout, proc.stderr)


@pytest.mark.parametrize("name", ["sslpassword", "password", "oauth_client_secret"])
def test_describe_and_scrub_hide_every_secret_parameter(name: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(f"postgresql://u@h/db?{name}=Kq7Zr4&{name}=Wm9Yx2&sslkey=/k.pem")
    shown = describe(url)
    assert "Kq7Zr4" not in shown and "Wm9Yx2" not in shown, shown
    assert "sslkey=%2Fk.pem" in shown  # a path, not a secret
    for raw in (url, url.render_as_string(hide_password=False)):
        assert scrub("x Kq7Zr4 y Wm9Yx2", raw) == "x *** y ***"
    # a libpq key=value string (in DATABASE_URL, say) is refused, but its secrets are known
    assert scrub("Kq7Zr4", f"host=h {name}='Kq7Zr4'") == "***"


def test_secret_parameters_cover_libpq() -> None:
    """Every parameter the libpq psycopg2 uses marks as a password ("*") is masked."""
    from refaudit.db import SECRET_PARAMETERS

    assert set(_libpq_password_parameters()) <= set(SECRET_PARAMETERS)


def _libpq_password_parameters() -> list[str]:
    import ctypes
    import ctypes.util

    import psycopg2

    class Option(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_char_p)
            for name in ("keyword", "envvar", "compiled", "val", "label", "dispchar")
        ] + [("dispsize", ctypes.c_int)]

    libs = sorted(Path(psycopg2.__file__).parent.parent.glob("psycopg2*.libs/libpq*.so*"))
    path = str(libs[0]) if libs else ctypes.util.find_library("pq")
    if path is None:
        pytest.skip("no libpq to ask")
    lib = ctypes.CDLL(path)
    lib.PQconndefaults.restype = ctypes.POINTER(Option)
    options = lib.PQconndefaults()
    found, i = [], 0
    while options[i].keyword:
        if options[i].dispchar == b"*":
            found.append(options[i].keyword.decode())
        i += 1
    assert "password" in found  # the list was read
    return found
