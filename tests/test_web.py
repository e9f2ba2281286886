"""The web console through the ASGI test client, on a real SQLite file: who may do
what, the rules API (validate, preview, explain, save), alerts and feedback."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from tests.web_helpers import NOW, RULES, Web, add_article, make_web, match_all
from watcher.core.digest import Policy, classify
from watcher.rules.load import digest_of
from watcher.web.auth import hash_password, verify_password


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = make_web(tmp_path)
    yield w
    w.store.close()


# -- security -----------------------------------------------------------------------------


def test_first_start_makes_an_admin_token_readable_only_by_its_owner(web: Web) -> None:
    path = web.folder / "data" / "web-admin-token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(web.admin_token) >= 32
    again = make_web(web.folder)  # a restart keeps it
    assert again.admin_token == web.admin_token
    again.store.close()


@pytest.mark.parametrize("path", ["/alerts", "/rules", "/articles/1", "/", "/archive",
                                  "/feeds", "/deliveries"])
def test_pages_need_a_login_even_on_loopback(web: Web, path: str) -> None:
    r = web.client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/alerts"), ("GET", "/api/v1/rules"), ("POST", "/api/v1/rules/validate"),
    ("POST", "/api/v1/rules/preview"), ("PUT", "/api/v1/rules"),
    ("POST", "/api/v1/alerts/1/feedback")])
def test_the_api_needs_a_token(web: Web, method: str, path: str) -> None:
    r = web.client.request(method, path, json={"rules_yaml": RULES})
    assert r.status_code == 401
    bad = web.client.request(method, path, json={"rules_yaml": RULES},
                             headers={"Authorization": "Bearer not-the-token"})
    assert bad.status_code == 401


def test_a_bearer_token_opens_the_api(web: Web) -> None:
    r = web.client.get("/api/v1/rules", headers={"Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 200 and r.json()["rules_yaml"] == RULES
    assert r.headers["etag"] == f'"{digest_of(RULES)}"'


def test_the_token_link_logs_in_with_a_strict_http_only_cookie(web: Web) -> None:
    r = web.client.get(f"/login?token={web.admin_token}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert web.client.get("/alerts").status_code == 200


def test_wrong_logins_are_throttled(web: Web) -> None:
    for _ in range(5):
        assert web.client.get("/login?token=wrong").status_code == 401
    r = web.client.get(f"/login?token={web.admin_token}")  # even the right one, for now
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_a_foreign_host_header_is_refused(web: Web) -> None:
    r = web.client.get("/login", headers={"Host": "evil.example:8080"})
    assert r.status_code == 421
    r = web.client.get("/api/v1/rules", headers={"Host": "rebind.attacker.test",
                                                 "Authorization": f"Bearer {web.admin_token}"})
    assert r.status_code == 421


def test_every_answer_carries_strict_headers(web: Web) -> None:
    for r in (web.client.get("/login"), web.client.get("/api/v1/alerts"),
              web.client.get("/static/app.css")):
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_state_changes_need_the_csrf_token(web: Web) -> None:
    csrf = web.login()
    article = add_article(web.store, "e1", "Tactical missile test", "A tactical missile.")
    match_all(web.store, web.settings)
    alert = web.store.alerts()[0].id
    assert web.client.post(f"/alerts/{alert}/feedback", data={}).status_code == 403
    assert web.client.post(f"/alerts/{alert}/feedback",
                           data={"csrf": "forged"}).status_code == 403
    r = web.client.post(f"/api/v1/alerts/{alert}/feedback", json={})
    assert r.status_code == 403  # a session calling the API sends X-CSRF-Token
    assert not web.store.alert(alert).not_relevant  # type: ignore[union-attr]
    r = web.client.post(f"/alerts/{alert}/feedback", data={"csrf": csrf},
                        follow_redirects=False)
    assert r.status_code == 303 and web.store.alert(alert).not_relevant  # type: ignore[union-attr]
    assert article


def test_a_request_from_another_site_is_refused(web: Web) -> None:
    csrf = web.login()
    r = web.client.post("/rules/check", data={"csrf": csrf, "rules_yaml": RULES},
                        headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    ok = web.client.post("/rules/check", data={"csrf": csrf, "rules_yaml": RULES},
                         headers={"Origin": "http://127.0.0.1:8080"})
    assert ok.status_code == 200


def test_passwords_are_hashed_and_checked() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "scrypt$garbage")


def test_users_log_in_by_password_and_viewers_cannot_save(tmp_path: Path) -> None:
    web = make_web(tmp_path, "web:\n  users:\n"
                   f"    ann: {{password_hash: '{hash_password('pw-ann')}', role: editor}}\n"
                   f"    vic: {{password_hash: '{hash_password('pw-vic')}'}}\n")
    try:
        assert not (tmp_path / "data" / "web-admin-token").exists()  # users exist: no token
        r = web.client.post("/login", data={"name": "vic", "password": "nope"})
        assert r.status_code == 401
        r = web.client.post("/login", data={"name": "vic", "password": "pw-vic"},
                            follow_redirects=False)
        assert r.status_code == 303
        page = web.client.get("/rules").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert "saving needs the editor role" in page
        r = web.client.post("/rules", data={"csrf": csrf, "rules_yaml": RULES + "\n",
                                            "version": digest_of(RULES)})
        assert r.status_code == 403
        assert (tmp_path / "rules.yaml").read_text() == RULES
        web.client.cookies.clear()
        web.client.post("/login", data={"name": "ann", "password": "pw-ann"})
        page = web.client.get("/rules").text
        assert 'id="save"' in page
    finally:
        web.store.close()


def test_api_tokens_from_the_config_carry_their_role(tmp_path: Path) -> None:
    web = make_web(tmp_path, "web:\n  tokens:\n    ci: {token: 'viewer-token-0123456789'}\n")
    try:
        head = {"Authorization": "Bearer viewer-token-0123456789"}
        assert web.client.get("/api/v1/alerts", headers=head).status_code == 200
        r = web.client.put("/api/v1/rules", json={"rules_yaml": RULES},
                           headers={**head, "If-Match": digest_of(RULES)})
        assert r.status_code == 403
        r = web.client.post("/api/v1/rules/arms/mute", json={"for": "1h"}, headers=head)
        assert r.status_code == 403 and web.store.mutes(NOW) == {}
    finally:
        web.store.close()


# -- rules --------------------------------------------------------------------------------


def api(web: Web, method: str, path: str, **kw: object):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {web.admin_token}", **kw.pop("headers", {})}  # type: ignore[dict-item]
    return web.client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]


def test_validate_answers_errors_with_line_and_column(web: Web) -> None:
    r = api(web, "POST", "/api/v1/rules/validate", json={"rules_yaml": RULES})
    assert r.json()["ok"] is True and r.json()["errors"] == []
    bad = "rules:\n  - name: x\n    query: '\"open'\n    notify: [nowhere]\n"
    body = api(web, "POST", "/api/v1/rules/validate", json={"rules_yaml": bad}).json()
    assert body["ok"] is False
    lines = {(e["line"], e["column"]) for e in body["errors"]}
    assert any(line == 3 for line, _ in lines) and any(line == 4 for line, _ in lines)
    assert any("nowhere" in e["message"] for e in body["errors"])
    broken = api(web, "POST", "/api/v1/rules/validate",
                 json={"rules_yaml": "rules: [\n"}).json()
    assert broken["ok"] is False and broken["errors"][0]["line"] == 2


def test_validate_runs_each_example(web: Web) -> None:
    text = RULES + ("    examples:\n      match: ['a tactical missile']\n"
                    "      no_match: ['tactical missiles again']\n")
    body = api(web, "POST", "/api/v1/rules/validate", json={"rules_yaml": text}).json()
    assert [(x["expect"], x["passed"]) for x in body["examples"]] == [("match", True),
                                                                      ("no_match", False)]


def seed(web: Web) -> dict[str, int]:
    ids = {
        "hit": add_article(web.store, "e1", "Kim inspects tactical missiles",
                           "State media said a new tactical missile system was shown.",
                           url="https://news.test/a"),
        "other": add_article(web.store, "e2", "Weather", "Sunny and warm."),
        "old": add_article(web.store, "e3", "Old tactical missile", "tactical missile",
                           when=NOW.replace(month=1)),
        "regex": add_article(web.store, "e4", "Launch ABC-123", "rocket ABC-123 launched"),
    }
    return ids


def test_preview_uses_the_matcher_on_the_archive(web: Web) -> None:
    ids = seed(web)
    r = api(web, "POST", "/api/v1/rules/preview",
            json={"rules_yaml": RULES, "rule": "arms", "since": "30d"})
    body = r.json()
    assert r.status_code == 200, body
    assert body["count"] == 1 and body["narrowed_by"]
    m = body["matches"][0]
    assert m["article_id"] == ids["hit"] and m["title"] == "Kim inspects tactical missiles"
    assert m["url"] == "https://news.test/a" and m["field"] == "title"
    assert "tactical missiles" in m["snippet"].lower()
    wide = api(web, "POST", "/api/v1/rules/preview",
               json={"rules_yaml": RULES, "rule": "arms", "since": "365d"}).json()
    assert wide["count"] == 2
    regex = "rules:\n  - name: codes\n    query: '/launch(ed)?/'\n    notify: [console]\n"
    body = api(web, "POST", "/api/v1/rules/preview",
               json={"rules_yaml": regex, "rule": "codes"}).json()
    assert body["count"] == 1 and body["narrowed_by"] is None  # every article looked at
    assert api(web, "POST", "/api/v1/rules/preview",
               json={"rules_yaml": RULES, "rule": "nope"}).status_code == 404
    assert api(web, "POST", "/api/v1/rules/preview",
               json={"rules_yaml": "rules: 3", "rule": "x"}).status_code == 422


def test_explain_api_gives_the_evaluation_tree(web: Web) -> None:
    ids = seed(web)
    body = api(web, "POST", "/api/v1/rules/explain",
               json={"rule": "arms", "article_id": ids["hit"]}).json()
    assert body["matched"] is True and body["query"]["held"] is True
    assert body["query"]["places"][0]["field"] == "title"
    body = api(web, "POST", "/api/v1/rules/explain",
               json={"rule": "arms", "article_id": ids["other"]}).json()
    assert body["matched"] is False and body["query"]["places"] == []
    assert api(web, "POST", "/api/v1/rules/explain",
               json={"rule": "arms", "article_id": 999}).status_code == 404


def test_saving_needs_the_version_read_and_keeps_comments(web: Web) -> None:
    new = RULES.replace("tactical missile", "ballistic missile")
    assert api(web, "PUT", "/api/v1/rules", json={"rules_yaml": new}).status_code == 428
    r = api(web, "PUT", "/api/v1/rules", json={"rules_yaml": new},
            headers={"If-Match": '"' + digest_of(RULES) + '"'})
    assert r.status_code == 200 and r.json()["version"] == digest_of(new)
    saved = (web.folder / "rules.yaml").read_text()
    assert saved == new and "# inline comment" in saved
    stale = api(web, "PUT", "/api/v1/rules", json={"rules_yaml": RULES},
                headers={"If-Match": digest_of(RULES)})
    assert stale.status_code == 412 and "ballistic" in stale.json()["diff"]
    invalid = api(web, "PUT", "/api/v1/rules", json={"rules_yaml": "rules: 3"},
                  headers={"If-Match": digest_of(new)})
    assert invalid.status_code == 422
    assert (web.folder / "rules.yaml").read_text() == new


def test_the_rules_page_checks_previews_and_saves_without_javascript(web: Web) -> None:
    seed(web)
    csrf = web.login()
    version = digest_of(RULES)
    draft = RULES + "  - name: codes\n    query: 'tactical'\n    notify: [console]\n"
    form = {"csrf": csrf, "rules_yaml": draft, "version": version, "rule": "codes",
            "since": "30d"}
    page = web.client.post("/rules/preview", data=form).text
    assert 'class="count">1<' in page and "Kim inspects" in page
    fragment = web.client.post("/rules/preview", data=form, headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith("<div id=\"preview\"")
    check = web.client.post("/rules/check", data={**form, "rules_yaml": "rules: 3"},
                            headers={"HX-Request": "true"}).text
    assert "problem" in check and "line 1" in check
    r = web.client.post("/rules", data=form, follow_redirects=False)
    assert r.status_code == 303 and (web.folder / "rules.yaml").read_text() == draft
    again = web.client.post("/rules", data=form)  # the version read is old now
    assert again.status_code == 409 and "differs" in again.text


# -- alerts --------------------------------------------------------------------------------


def test_alerts_api_and_feedback_counted_per_rule(web: Web) -> None:
    seed(web)
    assert match_all(web.store, web.settings) == 2  # two stories, each to the console
    body = api(web, "GET", "/api/v1/alerts").json()
    assert [a["title"] for a in body["alerts"]] == ["Old tactical missile",
                                                    "Kim inspects tactical missiles"]
    alert = body["alerts"][1]
    assert {k: alert[k] for k in ("rule", "title", "url", "feed")} == {
        "rule": "arms", "title": "Kim inspects tactical missiles",
        "url": "https://news.test/a", "feed": "wire"}
    assert "tactical missiles" in alert["snippet"].lower()
    assert api(web, "GET", "/api/v1/alerts?rule=other").json()["alerts"] == []
    assert api(web, "GET", "/api/v1/alerts?q=kim").json()["alerts"][0]["id"] == alert["id"]
    r = api(web, "POST", f"/api/v1/alerts/{alert['id']}/feedback", json={})
    assert r.status_code == 200 and r.json()["rule_counts"] == {"arms": 1}
    assert api(web, "POST", "/api/v1/alerts/999/feedback", json={}).status_code == 404
    web.login()
    rules = web.client.get("/rules").text
    assert "50%" in rules  # two alerts, one marked not relevant


def test_the_alerts_page_says_why_and_where_it_went(web: Web) -> None:
    ids = seed(web)
    match_all(web.store, web.settings)
    web.login()
    page = web.client.get("/alerts").text
    assert "Kim inspects tactical missiles" in page and "<mark>" in page
    assert "console: <span class=\"status-pending\">pending</span>" in page
    assert 'href="https://news.test/a" rel="noopener noreferrer"' in page
    assert "Kim" not in web.client.get("/alerts?rule=nothing").text
    article = web.client.get(f"/articles/{ids['hit']}?rule=arms").text
    assert "matched" in article and "seen as" in article


# -- mutes ---------------------------------------------------------------------------------


def test_editors_mute_a_rule_for_a_while(web: Web) -> None:
    r = api(web, "POST", "/api/v1/rules/arms/mute", json={"for": "1d"})
    assert r.status_code == 200
    assert web.store.mutes(NOW) == {"arms": NOW + timedelta(days=1)}
    assert api(web, "POST", "/api/v1/rules/nope/mute", json={"for": "1h"}).status_code == 404
    assert api(web, "POST", "/api/v1/rules/arms/mute", json={"for": "soon"}).status_code == 422
    assert api(web, "POST", "/api/v1/rules/arms/mute", json={"for": None}).json() == {
        "rule": "arms", "muted_until": None, "drop": False}
    assert web.store.mutes(NOW) == {}
    csrf = web.login()
    r = web.client.post("/rules/arms/mute", data={"csrf": csrf, "span": "1w"},
                        follow_redirects=False)
    assert r.status_code == 303 and web.store.mutes(NOW) == {"arms": NOW + timedelta(days=7)}
    assert "until 2026-05-17 12:00 UTC" in web.client.get("/rules").text
    assert web.client.post("/rules/arms/mute", data={"span": "1h"}).status_code == 403


def test_a_mute_may_drop_what_it_holds_and_the_dropped_are_listed(web: Web) -> None:
    r = api(web, "POST", "/api/v1/rules/arms/mute", json={"for": "1h", "drop": True})
    assert r.json() == {"rule": "arms", "muted_until": (NOW + timedelta(hours=1)).isoformat(),
                        "drop": True}
    assert web.store.dropping_mutes(NOW) == {"arms"}
    csrf = web.login()
    assert "dropping what it holds" in web.client.get("/rules").text
    r = web.client.post("/rules/arms/mute", data={"csrf": csrf, "span": "1d"},
                        follow_redirects=False)
    assert r.status_code == 303 and web.store.dropping_mutes(NOW) == set()  # a digest again
    web.client.post("/rules/arms/mute", data={"csrf": csrf, "span": "1d", "drop": "1"})
    assert web.store.dropping_mutes(NOW) == {"arms"}
    # What the daemon's dispatcher decides for a new delivery of the muted rule:
    add_article(web.store, "e1", "A tactical missile test", "tactical missile", when=NOW)
    match_all(web.store, web.settings, NOW)
    policy = {"arms": Policy(muted_until=NOW + timedelta(days=1), drop_muted=True)}
    web.store.apply_holds(classify(*web.store.hold_candidates(), policy, UTC), NOW)
    page = web.client.get("/deliveries?status=dropped").text
    assert "A tactical missile test" in page and "muted until" in page
    listed = api(web, "GET", "/api/v1/deliveries?status=dropped").json()["deliveries"]
    assert [d["status"] for d in listed] == ["dropped"]


def test_a_not_relevant_alert_becomes_a_no_match_example(web: Web) -> None:
    seed(web)
    match_all(web.store, web.settings)
    alert = web.store.alerts(text="kim")[0]
    csrf = web.login()
    web.client.post(f"/alerts/{alert.id}/feedback", data={"csrf": csrf})
    assert "Add as a no_match example of arms" in web.client.get("/alerts").text
    r = web.client.post(f"/alerts/{alert.id}/example", data={"csrf": csrf},
                        follow_redirects=False)
    assert r.status_code == 303
    text = (web.folder / "rules.yaml").read_text()
    kept = [line.split("#")[0].rstrip() for line in RULES.splitlines()]
    assert all(line in text for line in kept)  # the layout as it was, the example added
    assert "# our rules; this comment must survive a save" in text and "# inline comment" in text
    body = api(web, "POST", "/api/v1/rules/validate", json={"rules_yaml": text}).json()
    assert body["ok"] and [(x["expect"], x["passed"]) for x in body["examples"]] == [
        ("no_match", False)]  # the rule still takes it: the example says so until fixed
    assert "Kim inspects tactical missiles" in text


def test_the_rule_form_adds_and_edits_one_rule_keeping_the_rest(web: Web) -> None:
    seed(web)
    csrf = web.login()
    form = {"csrf": csrf, "version": digest_of(RULES), "name": "kim", "query": "",
            "default_operator": "OR", "any": "missile system, tactical missiles",
            "all": "", "none": "video game", "fields": ["title", "summary", "body"],
            "feeds": "wire", "tags": "", "languages": "", "notify": ["console"],
            "cooldown": "30m", "digest": ""}
    r = web.client.post("/rules/form", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    text = (web.folder / "rules.yaml").read_text()
    assert text.startswith(RULES)  # the rest as it was, comments and all
    body = api(web, "POST", "/api/v1/rules/validate", json={"rules_yaml": text}).json()
    assert body["ok"] and body["rules"] == 2
    page = web.client.get("/rules?edit=kim").text
    assert 'value="missile system, tactical missiles"' in page and 'value="1800s"' in page
    edited = {**form, "version": digest_of(text), "cooldown": "", "any": "missile system"}
    assert web.client.post("/rules/form", data=edited,
                           follow_redirects=False).status_code == 303
    again = (web.folder / "rules.yaml").read_text()
    assert "cooldown" not in again and "tactical missiles" not in again
    assert again.count("name: kim") == 1
    bad = {**edited, "version": digest_of(again), "notify": []}
    r = web.client.post("/rules/form", data=bad)
    assert r.status_code == 422 and "notify" in r.text
    assert (web.folder / "rules.yaml").read_text() == again  # refused: nothing written


def test_the_rules_page_draws_each_rules_alerts_per_day(web: Web) -> None:
    seed(web)
    match_all(web.store, web.settings, when=NOW - timedelta(days=2))
    match_all(web.store, web.settings)  # nothing new: the counts stay
    web.login()
    page = web.client.get("/rules").text
    assert '<svg class="spark"' in page
    assert 'aria-label="2 alert(s) in 30 days, at most 2 a day"' in page


def test_a_database_that_cannot_answer_is_a_503_not_a_crash(web: Web) -> None:
    from watcher.core.errors import StoreError

    def broken(*_: object) -> None:
        raise StoreError("store: database is locked")

    web.login()
    web.client.app.state.console.auth.session = broken  # type: ignore[attr-defined]
    r = web.client.get("/alerts")
    assert r.status_code == 503 and "database is locked" in r.text
    assert web.client.get("/static/app.css").status_code == 200
