"""Users, roles and tokens through the API: what each role may do, where, for how long,
and the audit trail of it all."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from tests.conftest import Api
from tests.unit.conftest import PASSWORD, as_user
from tests.unit.test_api_vms import _vm
from whimbrel.errors import WhimbrelError
from whimbrel.store.accounts import ApiToken


def _audit(api: Api, **params: object) -> list[dict[str, object]]:
    return list(api.call("GET", "/audit", params=params).json())


def test_an_operator_moves_but_adds_no_host_sets_no_fencing_forces_no_delete(two: Api) -> None:
    op = as_user(two, "olga", "operator")
    assert op.error("POST", "/hosts", {"name": "x", "uri": "fake://x"}) == (403, "E_FORBIDDEN")
    assert op.error("DELETE", "/hosts/f3") == (403, "E_FORBIDDEN")
    assert op.error("POST", "/hosts/f1/fence", {"agent": ""}) == (403, "E_FORBIDDEN")
    assert op.error("DELETE", "/vms/v1", params={"force": True}) == (403, "E_FORBIDDEN")
    ignoring = {"to": "f2", "ignore": ["W_ANY"]}
    assert op.error("POST", "/vms/v1/migrate", ignoring) == (403, "E_FORBIDDEN")
    assert op.error("POST", "/ha", {"fence_cap": 3}) == (403, "E_FORBIDDEN")
    assert op.error("POST", "/users", {"name": "eve", "password": PASSWORD}) == (
        403,
        "E_FORBIDDEN",
    )
    job = op.ok("POST", "/vms/v1/migrate", {"to": "f2"})
    assert job["user"] == "olga"
    assert two.call("GET", "/vms/v1").json()["host"] == "f2"
    assert two.call("GET", "/hosts/f3").status_code == 200  # nothing refused was done
    refusal = op.call("POST", "/hosts/f1/fence", json={"agent": ""}).json()["error"]
    assert "operator" in refusal["cause"] and "role grant olga administrator" in refusal["fix"]


def test_a_reader_reads_and_changes_nothing(two: Api) -> None:
    ro = as_user(two, "rita", "read-only")
    assert ro.call("GET", "/vms").status_code == 200
    assert ro.call("GET", "/hosts/f1").status_code == 200
    assert ro.error("POST", "/vms/v1/stop") == (403, "E_FORBIDDEN")
    assert ro.error("POST", "/vms/v1/migrate", {"to": "f2"}) == (403, "E_FORBIDDEN")
    assert ro.error("POST", "/hosts/f1/maintenance/start") == (403, "E_FORBIDDEN")
    assert ro.error("POST", "/vms/v1/repair") == (403, "E_FORBIDDEN")
    assert two.call("GET", "/vms/v1").json()["state"] == "running"


def test_a_user_without_a_role_reads_nothing(two: Api) -> None:
    nobody = as_user(two, "nora")
    assert nobody.error("GET", "/vms") == (403, "E_FORBIDDEN")
    assert nobody.call("GET", "/whoami").json()["grants"] == []


def test_a_cluster_operator_cannot_touch_another_cluster(two: Api) -> None:
    op = as_user(two, "carl", "operator", cluster="c1")
    assert op.error("POST", "/vms/w1/stop") == (403, "E_FORBIDDEN")
    assert op.error("POST", "/vms/v1/migrate", {"to": "g1"}) == (403, "E_FORBIDDEN")
    assert op.error("POST", "/vms/v1/migrate", {"to_cluster": "c2"}) == (403, "E_FORBIDDEN")
    assert op.error("POST", "/hosts/g1/maintenance/start") == (403, "E_FORBIDDEN")
    assert op.error("POST", "/vms", _vm("v2", "")) == (403, "E_FORBIDDEN")  # no host: fleet
    assert op.error("POST", "/vms/nope/stop") == (403, "E_FORBIDDEN")  # nothing learnt
    op.ok("POST", "/vms/v1/stop", {"force": True})
    op.ok("POST", "/vms", _vm("v2", "f2", disks=[]))
    assert two.call("GET", "/vms/w1").json()["state"] == "running"
    # A job on the other cluster cannot be cancelled by them either.
    other = two.call("POST", "/vms/w1/stop", json={"force": True}).json()["id"]
    assert op.error("POST", f"/jobs/{other}/cancel") == (403, "E_FORBIDDEN")


def test_a_grant_names_a_cluster_that_exists_and_a_known_role(two: Api) -> None:
    as_user(two, "gus")
    assert two.error("POST", "/users/gus/grants", {"role": "operator", "cluster": "c9"}) == (
        404,
        "E_CLUSTER_NOT_FOUND",
    )
    assert two.error("POST", "/users/gus/grants", {"role": "root"}) == (400, "E_INVALID_ROLE")
    assert two.call("GET", "/users").json()[1]["grants"] == []


def test_expired_and_revoked_tokens_are_refused(two: Api) -> None:
    op = as_user(two, "otto", "operator")
    me = op.call("GET", "/whoami").json()
    assert me["user"] == "otto"
    assert op.call("DELETE", f"/tokens/{me['token']}").status_code == 200
    assert op.error("GET", "/vms") == (401, "E_AUTH_TOKEN_REVOKED")

    late = two.call("POST", "/tokens", json={"user": "otto", "expires": "90m"}).json()
    with two.manager.sessions.begin() as s:
        past = datetime.now(UTC) - timedelta(seconds=1)
        s.execute(update(ApiToken).where(ApiToken.id == late["id"]).values(expires_at=past))
    op.http.headers["Authorization"] = f"Bearer {late['token']}"
    assert op.error("POST", "/vms/v1/stop") == (401, "E_AUTH_TOKEN_EXPIRED")
    assert two.call("GET", "/vms/v1").json()["state"] == "running"
    assert two.error("POST", "/tokens", {"expires": "400d"}) == (400, "E_TOKEN_EXPIRY")
    assert two.error("POST", "/tokens", {"expires": "soon"}) == (400, "E_TOKEN_EXPIRY")


def test_one_user_cannot_revoke_or_list_another_users_tokens(two: Api) -> None:
    a, b = as_user(two, "ann", "operator"), as_user(two, "bob", "operator")
    theirs = b.call("GET", "/whoami").json()["token"]
    assert a.error("DELETE", f"/tokens/{theirs}") == (404, "E_TOKEN_NOT_FOUND")
    assert a.error("GET", "/tokens", params={"user": "bob"}) == (403, "E_FORBIDDEN")
    assert b.call("GET", "/vms").status_code == 200


def test_login_gives_a_token_and_a_wrong_password_is_audited(two: Api) -> None:
    as_user(two, "lena", "read-only")
    anon = Api(two.manager)
    anon.http.headers.pop("Authorization")
    good = anon.call("POST", "/login", json={"user": "lena", "password": PASSWORD})
    assert good.status_code == 200 and good.json()["token"].startswith("wbt_")
    assert good.json()["expires_at"] is not None
    for who in ("lena", "nobody"):
        bad = anon.call("POST", "/login", json={"user": who, "password": "wrong password!"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "E_LOGIN_FAILED"
    failed = _audit(two, action="login", failed=True)
    assert [(e["user"], e["code"]) for e in failed] == [
        ("nobody", "E_LOGIN_FAILED"),
        ("lena", "E_LOGIN_FAILED"),
    ]
    assert PASSWORD not in str(_audit(two)) and "wrong password" not in str(_audit(two))


def test_the_audit_trail_records_changes_refusals_and_their_users(two: Api) -> None:
    op = as_user(two, "olga", "operator")
    job = op.ok("POST", "/vms/v1/migrate", {"to": "f2"})
    op.call("POST", "/hosts", json={"name": "x", "uri": "fake://x"})
    bad = Api(two.manager)
    bad.http.headers["Authorization"] = "Bearer stolen"
    bad.call("GET", "/vms")
    mine = _audit(two, user="olga")
    assert [(e["action"], e["status"], e["code"], e["job"]) for e in mine[:2]] == [
        ("host.add", 403, "E_FORBIDDEN", None),
        ("vm.migrate", 202, "", job["id"]),
    ]
    assert mine[0]["source"] and mine[0]["path"] == "/api/v1/hosts"
    refused = _audit(two, failed=True)[0]
    assert (refused["user"], refused["status"], refused["code"]) == ("", 401, "E_AUTH_TOKEN")
    scoped = as_user(two, "carl", "operator", cluster="c1")
    assert scoped.error("GET", "/audit") == (403, "E_FORBIDDEN")  # the fleet's trail
    reads = [e for e in _audit(two) if e["method"] == "GET" and e["status"] < 400]
    assert reads == []  # reads are not changes
    page = _audit(two, limit=2)
    older = _audit(two, limit=2, before=page[-1]["id"])
    assert len(page) == 2 and older[0]["id"] < page[-1]["id"]


def test_the_fleet_keeps_an_administrator(two: Api) -> None:
    assert two.error("DELETE", "/users/admin") == (409, "E_LAST_ADMINISTRATOR")
    assert two.error("DELETE", "/users/admin/grants", params={"role": "administrator"}) == (
        409,
        "E_LAST_ADMINISTRATOR",
    )
    as_user(two, "ada", "administrator")
    assert two.call("DELETE", "/users/admin/grants", params={"role": "administrator"}).json()
    assert two.error("GET", "/vms") == (403, "E_FORBIDDEN")


def test_passwords_are_hashed_and_checked_for_length(two: Api) -> None:
    assert two.error("POST", "/users", {"name": "short", "password": "abc"}) == (
        400,
        "E_PASSWORD_WEAK",
    )
    assert two.error("POST", "/users", {"name": "bad name", "password": PASSWORD}) == (
        400,
        "E_INVALID_USER_NAME",
    )
    as_user(two, "hank")
    with two.manager.sessions() as s:
        from whimbrel.access.users import get_user

        digest = get_user(s, "hank").password_hash
    assert digest.startswith("$argon2id$") and PASSWORD not in digest
    assert two.call("GET", "/users").json()[-1] == {
        "name": "hank",
        "realm": "local",
        "grants": [],
        "tokens": 1,
    }


def test_a_cluster_scoped_user_reads_only_their_clusters(two: Api) -> None:
    carl = as_user(two, "carl", "read-only", cluster="c1")
    assert [v["name"] for v in carl.call("GET", "/vms").json()] == ["v1"]
    assert [h["name"] for h in carl.call("GET", "/hosts").json()] == ["f1", "f2", "f3"]
    assert [c["name"] for c in carl.call("GET", "/clusters").json()] == ["c1"]
    assert carl.error("GET", "/vms/w1") == (404, "E_VM_NOT_FOUND")
    assert carl.error("GET", "/vms/w1/heartbeat") == (404, "E_VM_NOT_FOUND")
    assert carl.error("GET", "/hosts/g1") == (404, "E_HOST_NOT_FOUND")
    assert carl.error("GET", "/hosts/g1/fence") == (404, "E_HOST_NOT_FOUND")
    assert carl.error("GET", "/clusters/c2") == (404, "E_CLUSTER_NOT_FOUND")
    assert carl.call("GET", "/vms/v1").status_code == 200
    theirs = {j["subject"] for j in carl.call("GET", "/jobs", params={"limit": 500}).json()}
    assert "v1" in theirs and "w1" not in theirs and "g1" not in theirs
    w1_job = next(
        j["id"] for j in two.call("GET", "/jobs", params={"limit": 500}).json()
        if j["subject"] == "w1"
    )  # fmt: skip
    assert carl.error("GET", f"/jobs/{w1_job}") == (404, "E_JOB_NOT_FOUND")
    fleet = as_user(two, "fred", "read-only")
    assert [v["name"] for v in fleet.call("GET", "/vms").json()] == ["v1", "w1"]
    assert fleet.call("GET", f"/jobs/{w1_job}").status_code == 200


def test_a_store_out_of_reach_leaves_recent_tokens_valid_for_a_grace(
    two: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    m = two.manager
    known = m.token
    assert m.authenticate(known).user == "admin"  # checked against the store: remembered
    unseen = two.call("POST", "/tokens", json={"label": "never used"}).json()["token"]

    def down() -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(m._engine, "connect", down)
    assert m.authenticate(known).user == "admin"  # checked moments ago: no store read
    monkeypatch.setattr(m._verified, "fresh_s", 0.0)
    assert m.authenticate(known).user == "admin"  # the store failed: within the grace
    with pytest.raises(WhimbrelError) as info:
        m.authenticate(unseen)
    assert info.value.code == "E_STORE_UNREACHABLE" and "health" in info.value.fix
    monkeypatch.setattr(m._verified, "grace_s", 0.0)
    with pytest.raises(WhimbrelError):
        m.authenticate(known)


def test_a_store_that_never_answers_is_judged_out_of_reach_by_a_deadline(
    two: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frozen server (or a link whose far end still acknowledges) never fails a call:
    the token check gives up at its deadline, and a token seen lately still serves."""
    import threading

    import whimbrel.manager as manager_module

    m = two.manager
    known = m.token
    assert m.authenticate(known).user == "admin"
    unseen = two.call("POST", "/tokens", json={"label": "never used"}).json()["token"]
    frozen = threading.Event()
    monkeypatch.setattr(m._engine, "connect", lambda: frozen.wait(30))
    monkeypatch.setattr(manager_module, "TOKEN_CHECK_S", 0.2)
    monkeypatch.setattr(m._verified, "fresh_s", 0.0)
    try:
        t0 = time.monotonic()
        assert m.authenticate(known).user == "admin"  # within the grace, at the deadline
        assert 0.2 <= time.monotonic() - t0 < 2
        t0 = time.monotonic()
        with pytest.raises(WhimbrelError) as info:
            m.authenticate(unseen)  # not asked again for a while: no queue of deadlines
        assert time.monotonic() - t0 < 0.1
        assert info.value.code == "E_STORE_UNREACHABLE"
        assert "did not answer" in info.value.detail
    finally:
        frozen.set()
    monkeypatch.undo()
    time.sleep(0.2)
    assert m.authenticate(unseen).user == "admin"  # the store back: asked again


def test_a_revocation_elsewhere_holds_here_within_the_freshness(
    two: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = two.manager
    t = two.call("POST", "/tokens", json={"label": "replica b revokes it"}).json()
    assert m.authenticate(t["token"]).token_id == t["id"]
    with m.sessions.begin() as s:  # another replica revokes it in the shared store
        now = datetime.now(UTC)
        s.execute(update(ApiToken).where(ApiToken.id == t["id"]).values(revoked_at=now))
    assert m.authenticate(t["token"]).token_id == t["id"]  # for at most fresh_s here
    monkeypatch.setattr(m._verified, "fresh_s", 0.0)
    with pytest.raises(WhimbrelError) as info:
        m.authenticate(t["token"])
    assert info.value.code == "E_AUTH_TOKEN_REVOKED"


def test_repeated_failed_logins_are_throttled_by_user_and_address(two: Api) -> None:
    from whimbrel.access.users import LOGIN_FAILURES

    as_user(two, "lena", "read-only")
    anon = Api(two.manager)
    anon.http.headers.pop("Authorization")
    for _ in range(LOGIN_FAILURES):
        bad = anon.call("POST", "/login", json={"user": "lena", "password": "guess guess!"})
        assert bad.json()["error"]["code"] == "E_LOGIN_FAILED"
    right = anon.call("POST", "/login", json={"user": "lena", "password": PASSWORD})
    assert right.status_code == 401 and right.json()["error"]["code"] == "E_LOGIN_THROTTLED"
    assert "audit list --action login" in right.json()["error"]["fix"]
    # The same address, another user: the address is throttled too.
    as_user(two, "otto", "read-only")
    other = anon.call("POST", "/login", json={"user": "otto", "password": PASSWORD})
    assert other.json()["error"]["code"] == "E_LOGIN_THROTTLED"
    assert two.call("GET", "/vms").status_code == 200  # tokens are not throttled
