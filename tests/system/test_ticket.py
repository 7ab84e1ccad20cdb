"""Ticket authentication (api.user + api.password_file) instead of a token:
login through POST /access/ticket, the ticket as a cookie on every GET, and a
new login when the server no longer accepts the ticket."""

from conftest import guest, wait_until

USER = "proxreap@pve"
PASSWORD = "correct horse battery staple"


def ticket_config(lab, sim, password_file):
    return lab.config(sim, api={"token_id": None, "token_secret_file": None, "user": USER,
                                "password_file": password_file})


def test_plan_with_ticket_auth(lab):
    sim = lab.sim([guest(100, "idle", cpu=0.01, mem_mb=300)], users={USER: PASSWORD})
    config = ticket_config(lab, sim, lab.secret_file("password", PASSWORD))
    guests = lab.plan(config)
    assert guests[100]["verdict"] == "idle"
    log = sim.requests()
    logins = [r for r in log if r["path"] == "/access/ticket"]
    assert len(logins) == 1
    assert logins[0]["method"] == "POST" and logins[0]["status"] == 200
    gets = [r for r in log if r["method"] == "GET"]
    assert gets and all(r["auth"] == "ticket" and r["status"] == 200 for r in gets)
    # The password never travels in a URL or the request log.
    assert all(PASSWORD not in repr(r) for r in log)


def test_wrong_password_is_a_clear_error(lab):
    sim = lab.sim([guest(100, "idle")], users={USER: PASSWORD})
    config = ticket_config(lab, sim, lab.secret_file("password", "not the password"))
    r = lab.cli("plan", config=config)
    assert r.returncode == 1
    assert "POST /access/ticket" in r.stderr
    assert "authentication failed" in r.stderr
    assert "not the password" not in r.stderr


def test_expired_ticket_is_renewed_by_logging_in_again(lab):
    # The server forgets tickets after 1 s; the daemon polls for much longer
    # and must keep every poll authenticated by logging in again.
    sim = lab.sim([guest(100, "idle", cpu=0.01, mem_mb=300)], users={USER: PASSWORD},
                  ticket_lifetime=1)
    config = ticket_config(lab, sim, lab.secret_file("password", PASSWORD))
    d = lab.daemon(config)

    def logins():
        return [r for r in sim.requests() if r["path"] == "/access/ticket" and r["status"] == 200]

    wait_until(lambda: len(logins()) >= 3, timeout=30, message="no renewed logins")
    status = wait_until(d.status, message="no status file")
    log = d.log()
    assert "cannot poll" not in log, log
    assert status["api"]["polls_failed"] == 0
    rejected = [r for r in sim.requests() if r["path"] == "/cluster/resources" and r["status"] == 401]
    accepted = [r for r in sim.requests() if r["path"] == "/cluster/resources" and r["status"] == 200]
    # Each expiry costs one refused GET, answered by a login and a retry.
    assert len(accepted) > len(rejected) >= 1
