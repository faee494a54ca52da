"""The web console in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver, against a live `keyward serve` (../api/browser.rs starts it with an admin
and runs this script).

Each flow is a function; they run in order, a flow whose prerequisite failed is skipped, and the
report names every flow that failed and why. Once with JavaScript on, then the flows that must
work without it with JavaScript off. Every page visited is saved as a PNG (one per page, named by
pass and page: `js-key.png`, `nojs-key.png`) and checked: with axe-core (in the JavaScript pass:
axe runs on promises and timers), where any violation of impact serious or critical fails the
run, and so does a form field without a label, a state-changing form without its CSRF token, or
an error on the browser's console (a script error, a CSP violation). A third party's markup on a
page (Swagger UI's on /docs/, THIRD_PARTY_MARKUP) is left out of axe and the label check, never out
of the console's.

The flows: sign-in (a wrong password, the admin, a member by keyboard), every page of the nav,
tenants and members created, keys created (every field), shown once, verified, renamed, paused,
rotated, revoked (also by keyboard) and filtered, the usage chart, a form without its CSRF token,
another member's key, sign-out; /docs (Swagger UI from the binary: every operation of the OpenAPI
document shown, nothing loaded from another origin, "Try it out" on getHealth, and on listApiKeys
refused and then, authorized with a member's key, answered); without JavaScript, sign-in and a
key created, rotated and revoked.

Environment: KEYWARD_URL, KEYWARD_ADMIN_EMAIL, KEYWARD_ADMIN_PASSWORD, KEYWARD_SCREENSHOTS (a
folder), KEYWARD_AXE_JS (axe.min.js); KEYWARD_CHROMIUM and KEYWARD_CHROMEDRIVER (default Debian's);
KEYWARD_BROWSER_FLOWS (comma-separated flow names: run only those, and what they need).
Exit status 0 when everything passed.
"""

import base64
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["KEYWARD_URL"].rstrip("/")
ADMIN_EMAIL = os.environ["KEYWARD_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["KEYWARD_ADMIN_PASSWORD"]
SCREENSHOTS = os.environ["KEYWARD_SCREENSHOTS"]
AXE_JS = os.environ["KEYWARD_AXE_JS"]
CHROMIUM = os.environ.get("KEYWARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KEYWARD_CHROMEDRIVER", "/usr/bin/chromedriver")

MEMBER_PASSWORD = "ann's long console password"
OTHER_PASSWORD = "bob's long console password"
SESSION_COOKIE = "keyward_session"
# Seconds to wait for a page; generous, since the rest of the suite runs beside this.
WAIT = 20
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Usage is written every 5 s; the chart is polled for up to this long.
USAGE_WAIT = 15
# axe impacts that fail the run.
BLOCKING_IMPACTS = ("serious", "critical")
# Markup of a third party's on a page, left out of axe and the label check (the console is still
# checked): Swagger UI's (swagger-ui-dist, vendored) is not keyward's to fix.
THIRD_PARTY_MARKUP = {"docs": "#swagger-ui"}

with open(AXE_JS, encoding="utf-8") as f:
    AXE_SOURCE = f.read()

# Everything a page check found wrong (accessibility, labels, CSRF, console errors): reported
# after the flows, each one a failure.
page_findings = []


# ---------------------------------------------------------------------------------------------
# HTTP without a browser: the API, and requests that a browser would not make.


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


HTTP = urllib.request.build_opener(NoRedirect)


def http(method, path, headers=None, body=None):
    """(status, headers, text) of one request, redirects not followed."""
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with HTTP.open(req, timeout=WAIT) as res:
            return res.status, res.headers, res.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")


def api(method, path, body=None, token=None, key=None):
    """(status, JSON body) of one call of the API, with a session token or an API key."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if key:
        headers["X-API-Key"] = key
    data = None if body is None else json.dumps(body).encode()
    status, _, text = http(method, path, headers, data)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def api_ok(method, path, status, body=None, token=None):
    """The JSON body of a call of the API that must answer `status`."""
    got, answer = api(method, path, body, token)
    assert got == status, f"{method} {path}: expected {status}, got {got}: {answer}"
    return answer


def verify(verifier, key):
    """The API's verdict on `key`, checked with the `verifier` key (keyward:verify)."""
    status, _, text = http(
        "POST",
        "/api/v1/keys/verify",
        {"X-API-Key": verifier, "Content-Type": "application/json"},
        json.dumps({"key": key, "scopes": []}).encode(),
    )
    assert status == 200, f"POST /api/v1/keys/verify answered {status}: {text}"
    return json.loads(text)


def expect_code(verifier, key, code):
    verdict = verify(verifier, key)
    assert verdict.get("code") == code, f"verify: expected {code}, got {verdict}"
    if code == "VALID":
        assert verdict.get("valid") is True, f"verify: VALID but not valid: {verdict}"


def signed_in_as(cookie, path):
    """GET `path` with only the session cookie `cookie`: (status, Location)."""
    status, headers, _ = http("GET", path, {"Cookie": f"{SESSION_COOKIE}={cookie}"})
    return status, headers.get("Location")


def path_of(location):
    return urllib.parse.urlsplit(urllib.parse.urljoin(BASE + "/", location or "")).path


# ---------------------------------------------------------------------------------------------
# The browser.


class Browser:
    """One headless chromium; `label` names its screenshots ("js", "nojs")."""

    def __init__(self, label, javascript):
        self.label = label
        self.javascript = javascript
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--lang=en-US",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
        ):
            options.add_argument(arg)
        if not javascript:
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2}
            )
        # The performance log carries each document's status and headers; the browser log, the
        # page's console (CSP violations, script errors).
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        # The copy button's result is read back from the clipboard.
        self.driver.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": BASE, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        )
        self.driver.set_page_load_timeout(WAIT * 3)
        self.driver.set_script_timeout(WAIT * 3)
        self.status = None
        self.headers = {}
        self.found = set()
        self.checked = set()

    def quit(self):
        self.driver.quit()

    # -- navigation --

    def open(self, path, page):
        self.driver.get(BASE + path)
        return self.loaded(page)

    def click_and_wait(self, element, page):
        """Clicks `element` (a submit button or a link) and waits for the next document."""
        token = self.mark_document()
        element.click()
        self.wait_for_next_document(token)
        return self.loaded(page)

    def mark_document(self):
        """Marks the document shown (a property of its window, not of the page); the mark is
        what tells the next document from it."""
        token = f"document-{time.monotonic_ns()}"
        self.driver.execute_script("window.__keywardDocument = arguments[0]", token)
        return token

    def still_on(self, token):
        return self.driver.execute_script("return window.__keywardDocument === arguments[0]", token)

    def wait_for_next_document(self, token):
        # While the browser navigates, a script may find no document to run in: that is asked
        # again, not a failure.
        WebDriverWait(self.driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return window.__keywardDocument !== arguments[0] && document.readyState === 'complete'",
                token,
            )
        )

    def loaded(self, page):
        """The document now shown is `page`: wait for it, note its status, screenshot and check it."""
        self.wait_until_complete()
        self.read_network()
        self.screenshot(page)
        self.check_page(page)
        return self

    def wait_until_complete(self):
        WebDriverWait(self.driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )

    def read_network(self):
        """The status and headers of the last document the browser received."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.responseReceived":
                continue
            params = message["params"]
            if params.get("type") == "Document":
                self.status = params["response"]["status"]
                self.headers = {k.lower(): v for k, v in params["response"]["headers"].items()}

    @property
    def path(self):
        return urllib.parse.urlsplit(self.driver.current_url).path

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def has(self, css):
        return len(self.find_all(css)) > 0

    def text(self, css):
        return self.find(css).text.strip()

    def source(self):
        return self.driver.page_source

    def fill(self, css, value):
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def choose(self, css, value):
        Select(self.find(css)).select_by_value(value)

    def cookie(self):
        found = self.driver.get_cookie(SESSION_COOKIE)
        assert found, f"no {SESSION_COOKIE} cookie; cookies: {self.driver.get_cookies()}"
        return found

    def where(self):
        """Where the browser is, for a failure's message: URL, status and heading."""
        headings = [h.text.strip() for h in self.find_all("h1")]
        return f"{self.driver.current_url} (status {self.status}, <h1> {headings})"

    def expect_status(self, status, what):
        assert self.status == status, f"{what}: expected status {status}, got {self.status} at {self.where()}"

    def expect_path(self, path, what):
        assert self.path == path, f"{what}: expected to be at {path}, at {self.where()}"

    # -- what every page gets --

    def screenshot(self, page):
        """The whole page, beyond the window, as `<label>-<page>.png`."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        with open(os.path.join(SCREENSHOTS, f"{self.label}-{page}.png"), "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    def finding(self, page, text):
        """A fault of `page`, reported once however often the page is seen."""
        if (self.label, page, text) not in self.found:
            self.found.add((self.label, page, text))
            page_findings.append(f"{self.label} {page} ({self.driver.current_url}): {text}")

    def check_page(self, page):
        """axe-core, labels, CSRF tokens and the console, at every page load (a page's content
        changes between visits: an empty list, then one with keys)."""
        self.check_console(page)
        # axe-core answers through promises and timers, which a page without JavaScript never
        # runs; the pages are the same HTML in both passes and the JavaScript pass checks them.
        # A page seen again is checked again only when its content changed (say, a list that
        # was empty): axe takes a while.
        size = self.driver.execute_script("return document.getElementsByTagName('*').length")
        if (page, size) in self.checked:
            return
        self.checked.add((page, size))
        if self.javascript:
            self.run_axe(page)
        self.check_forms(page)

    def check_console(self, page, expected=()):
        """Every error on the console since it was last read is a finding, but those that
        contain one of `expected` (a request the flow meant to be refused)."""
        for entry in self.driver.get_log("browser"):
            if entry["level"] != "SEVERE":
                continue
            message = entry["message"]
            # A page answered with an error status logs its own status; that is tested by the
            # flows. A missing favicon is no fault of a page.
            if "Failed to load resource: the server responded with a status of" in message and (
                message.startswith(self.driver.current_url) or "favicon.ico" in message
            ):
                continue
            if any(e in message for e in expected):
                continue
            self.finding(page, f"console error: {message}")

    def run_axe(self, page):
        self.driver.execute_script(AXE_SOURCE)
        third_party = THIRD_PARTY_MARKUP.get(page)
        raw = self.driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const context = arguments[0] ? {exclude: [[arguments[0]]]} : document;
            axe.run(context, {resultTypes: ['violations']})
              .then(r => done(JSON.stringify(r.violations)))
              .catch(e => done(JSON.stringify({error: String(e)})));
            """,
            third_party,
        )
        violations = json.loads(raw)
        if isinstance(violations, dict):
            self.finding(page, f"axe-core did not run: {violations['error']}")
            return
        for v in violations:
            if v.get("impact") in BLOCKING_IMPACTS:
                targets = "; ".join(
                    " ".join(n["target"]) if isinstance(n["target"], list) else str(n["target"])
                    for n in v["nodes"][:5]
                )
                self.finding(
                    page,
                    f"axe {v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])} nodes: {targets})",
                )

    def check_forms(self, page):
        """Every form field has a label; every state-changing form carries its CSRF token."""
        unlabelled = self.driver.execute_script(
            """
            const out = [];
            for (const el of document.querySelectorAll('input, select, textarea')) {
              if (arguments[0] && el.closest(arguments[0])) continue;
              const type = (el.getAttribute('type') || '').toLowerCase();
              if (['hidden', 'submit', 'button', 'reset', 'image'].includes(type)) continue;
              const labelled = (el.labels && el.labels.length > 0)
                || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
              if (!labelled) out.push(el.outerHTML.slice(0, 160));
            }
            return out;
            """,
            THIRD_PARTY_MARKUP.get(page),
        )
        for field in unlabelled:
            self.finding(page, f"form field without a label: {field}")
        forms = self.driver.execute_script(
            """
            return Array.from(document.forms).map(f => ({
              id: f.id, action: f.getAttribute('action'), method: (f.getAttribute('method') || 'get').toLowerCase(),
              csrf: Array.from(f.querySelectorAll('input[name=csrf]')).map(i => [i.type, i.value]),
            }));
            """
        )
        for form in forms:
            # Sign-in comes before any session, so before any session's token.
            if form["method"] != "post" or form["action"] == "/sign-in":
                continue
            if not any(t == "hidden" and v for t, v in form["csrf"]):
                self.finding(page, f"POST form #{form['id']} ({form['action']}) has no hidden csrf input with a value")


# ---------------------------------------------------------------------------------------------
# Steps that flows share.


def sign_in(b, email, password, landing="keys"):
    """Signs in with the form; `landing` names the page it ends on (/keys)."""
    b.open("/sign-in", "sign-in")
    b.fill("#sign-in input[name=email]", email)
    b.fill("#sign-in input[name=password]", password)
    b.click_and_wait(b.find("#sign-in [type=submit], #sign-in button"), landing)
    b.expect_path("/keys", f"signed in as {email}")


def sign_out(b):
    """Signs out with the nav's form; asserts the old cookie is refused afterwards."""
    old = b.cookie()["value"]
    button = b.find("form#sign-out button, form#sign-out [type=submit]")
    assert button.text.strip() == "Sign out" or button.get_attribute("value") == "Sign out", (
        f"sign-out button reads {button.text!r}"
    )
    b.click_and_wait(button, "sign-in")
    b.expect_path("/sign-in", "after sign-out")
    status, location = signed_in_as(old, "/keys")
    assert status == 303 and path_of(location) == "/sign-in", (
        f"GET /keys with the signed-out cookie: expected 303 to /sign-in, got {status} {location}"
    )
    b.driver.get(BASE + "/keys")
    b.expect_path("/sign-in", "GET /keys after sign-out")


def create_key(b, name, scopes, expires="never", page="key-created"):
    """Creates a key through /keys/new; (id, plaintext) from the page that shows it once."""
    b.open("/keys", "keys")
    b.click_and_wait(b.find("a#new-key"), "keys-new")
    b.expect_path("/keys/new", "the new-key link")
    form = "#new-key-form"
    b.fill(f"{form} input[name=name]", name)
    b.fill(f"{form} input[name=scopes]", scopes)
    b.choose(f"{form} select[name=expires]", expires)
    submit = b.find(f"{form} button[type=submit], {form} input[type=submit], {form} button:not([type])")
    assert "Create key" in (submit.text or submit.get_attribute("value")), f"submit reads {submit.text!r}"
    b.click_and_wait(submit, page)
    return read_issued(b, page, "create")


def read_issued(b, page, what):
    """(id, plaintext) from the page that shows a new key's plaintext, with its headers checked."""
    assert b.status in (200, 201), f"{what}: the page with the plaintext answered {b.status}"
    assert "no-store" in b.headers.get("cache-control", ""), (
        f"{what}: the page with the plaintext has Cache-Control {b.headers.get('cache-control')!r}, not no-store"
    )
    plaintext = b.text("code#plaintext")
    assert len(plaintext) >= 20 and " " not in plaintext, f"{what}: #plaintext holds {plaintext!r}"
    copy = b.find("button#copy")
    if b.javascript:
        assert copy.is_displayed(), f"{what}: the copy button is not shown"
        copy.click()
        WebDriverWait(b.driver, WAIT).until(lambda d: copy.text.strip() != "Copy")
        copied = b.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, e => done('clipboard: ' + e));"
        )
        assert copied == plaintext, f"{what}: the copy button put {copied!r} on the clipboard"
    elif copy.is_displayed():
        # Without JavaScript it can do nothing, so it should not be there; a fault of the page,
        # not one that stops the flow.
        b.finding(page, "the copy button (button#copy) is shown without JavaScript, where it does nothing")
    href = b.find("a#key-link").get_attribute("href")
    match = re.fullmatch(rf"{re.escape(BASE)}/keys/({UUID})", href)
    assert match, f"{what}: #key-link goes to {href}"
    return match.group(1), plaintext


def open_key(b, key_id, page="key"):
    b.open(f"/keys/{key_id}", page)
    b.expect_status(200, f"GET /keys/{key_id}")
    return b


def key_status(b):
    return b.text("dd#status").lower()


def rotate(b, key_id, grace, page="key-rotated"):
    open_key(b, key_id)
    b.choose("form#rotate select[name=grace_period]", grace)
    button = b.find("form#rotate button, form#rotate [type=submit]")
    assert "Rotate" in (button.text or button.get_attribute("value")), f"rotate button reads {button.text!r}"
    b.click_and_wait(button, page)
    return read_issued(b, page, "rotate")


def revoke(b, key_id, page="key-revoked"):
    open_key(b, key_id)
    box = b.find("form#revoke input#confirm-revoke[type=checkbox][name=confirm]")
    assert box.get_attribute("required") is not None, "the revoke checkbox is not required"
    button = b.find("form#revoke button, form#revoke [type=submit]")
    assert "Revoke" in (button.text or button.get_attribute("value")), f"revoke button reads {button.text!r}"
    # Unchecked, the browser itself refuses to send the form.
    token = b.mark_document()
    button.click()
    time.sleep(0.5)
    assert b.still_on(token), "Revoke was sent without the confirmation checked"
    box.click()
    assert box.is_selected()
    b.click_and_wait(button, page)


# ---------------------------------------------------------------------------------------------
# The flows. `state` carries what one flow leaves for the next.


def flow_root_redirects(state):
    status, headers, _ = http("GET", "/")
    location = headers.get("Location")
    assert status == 303 and path_of(location) == "/sign-in", (
        f"GET / signed out: expected 303 to /sign-in, got {status} {location}"
    )


def flow_wrong_password(state):
    b = state["js"]
    b.open("/sign-in", "sign-in")
    b.expect_status(200, "GET /sign-in")
    for name, kind in (("email", None), ("password", "password")):
        field = b.find(f"form#sign-in[method=post][action='/sign-in'] input[name={name}]")
        if kind:
            assert field.get_attribute("type") == kind, f"the {name} field has type {field.get_attribute('type')}"
        field_id = field.get_attribute("id")
        assert field_id and b.has(f"label[for='{field_id}']"), f"the {name} field has no <label for=...>"
    b.fill("#sign-in input[name=email]", ADMIN_EMAIL)
    b.fill("#sign-in input[name=password]", "not the admin's password")
    b.click_and_wait(b.find("#sign-in [type=submit], #sign-in button"), "sign-in-wrong-password")
    b.expect_status(401, "a wrong password")
    error = b.find("p.error[role=alert]")
    assert "Wrong email or password" in error.text, f"the error reads {error.text!r}"
    assert not b.driver.get_cookie(SESSION_COOKIE), "a wrong password set a session cookie"


def flow_admin_signs_in(state):
    b = state["js"]
    sign_in(b, ADMIN_EMAIL, ADMIN_PASSWORD)
    cookie = b.cookie()
    assert cookie.get("httpOnly") is True, f"the session cookie is not HttpOnly: {cookie}"
    assert cookie.get("sameSite") == "Strict", f"the session cookie is not SameSite=Strict: {cookie}"
    status, location = signed_in_as(cookie["value"], "/")
    assert status == 303 and path_of(location) == "/keys", (
        f"GET / signed in: expected 303 to /keys, got {status} {location}"
    )
    assert b.has("nav a"), "a signed-in page has no <nav> with links"
    assert b.has("nav form#sign-out[method=post][action='/sign-out'], form#sign-out[method=post][action='/sign-out']"), (
        "a signed-in page has no sign-out form"
    )


def flow_admin_visits_every_page(state):
    """Every link of the nav, as the admin: each page screenshot and checked."""
    b = state["js"]
    b.open("/keys", "keys")
    links = []
    for a in b.find_all("nav a[href]"):
        href = urllib.parse.urlsplit(a.get_attribute("href"))
        if href.netloc == urllib.parse.urlsplit(BASE).netloc and href.path not in links:
            links.append(href.path)
    assert links, "the nav has no links"
    for path in links:
        page = path.strip("/").replace("/", "-") or "home"
        b.open(path, page)
        b.expect_status(200, f"GET {path} (a nav link)")
    for path in ("/keys/new", "/tenants", "/users"):
        b.open(path, path.strip("/").replace("/", "-"))
        b.expect_status(200, f"GET {path}")


def flow_admin_creates_tenant_and_members(state):
    b = state["js"]
    b.open("/tenants", "tenants")
    b.fill("form#new-tenant[method=post][action='/tenants'] input[name=name]", "Acme")
    b.fill("form#new-tenant input[name=slug]", "acme")
    b.click_and_wait(b.find("form#new-tenant button, form#new-tenant [type=submit]"), "tenants")
    assert b.status == 200, f"creating a tenant ended on status {b.status} at {b.driver.current_url}"
    tables = " ".join(t.text for t in b.find_all("table"))
    assert "acme" in tables, f"the new tenant is not listed: {tables!r}"

    b.open("/users", "users")
    for email, password in (("ann@example.com", MEMBER_PASSWORD), ("bob@example.com", OTHER_PASSWORD)):
        form = "form#new-user[method=post][action='/users']"
        b.fill(f"{form} input[name=email]", email)
        b.fill(f"{form} input[name=password]", password)
        roles = [o.get_attribute("value") for o in b.find_all(f"{form} select[name=role] option")]
        assert set(roles) >= {"member", "tenant_admin", "admin"}, f"role options: {roles}"
        tenants = [o.get_attribute("value") for o in b.find_all(f"{form} select[name=tenant] option")]
        assert "acme" in tenants and "" in tenants, f"tenant options (slugs, and '' for none): {tenants}"
        b.choose(f"{form} select[name=role]", "member")
        b.choose(f"{form} select[name=tenant]", "acme")
        b.click_and_wait(b.find(f"{form} button, {form} [type=submit]"), "users")
        assert b.status == 200, f"creating {email} ended on status {b.status} at {b.driver.current_url}"
        tables = " ".join(t.text for t in b.find_all("table"))
        assert email in tables, f"{email} is not listed: {tables!r}"


def flow_admin_signs_out(state):
    sign_out(state["js"])


def flow_member_signs_in_by_keyboard(state):
    b = state["js"]
    b.open("/sign-in", "sign-in")
    email = b.find("#sign-in input[name=email]")
    email.click()
    assert b.driver.switch_to.active_element == email, "clicking the email field did not focus it"
    ActionChains(b.driver).send_keys("ann@example.com").send_keys(Keys.TAB).perform()
    focused = b.driver.switch_to.active_element
    assert focused.get_attribute("name") == "password", (
        f"Tab from the email field went to {focused.tag_name} name={focused.get_attribute('name')!r}"
    )
    token = b.mark_document()
    ActionChains(b.driver).send_keys(MEMBER_PASSWORD).send_keys(Keys.ENTER).perform()
    b.wait_for_next_document(token)
    b.loaded("keys")
    b.expect_path("/keys", "signed in with the keyboard")
    b.expect_status(200, "GET /keys")
    assert b.has("table#keys"), "/keys has no table#keys"


def tab_to(b, css, limit=80):
    """Presses Tab until the element `css` names has the focus (the keyboard alone reaches it)."""
    target = b.find(css)
    for _ in range(limit):
        if b.driver.switch_to.active_element == target:
            return target
        ActionChains(b.driver).send_keys(Keys.TAB).perform()
    raise AssertionError(f"{css} is not reached with Tab within {limit} presses")


def flow_keyboard_creates_and_revokes_a_key(state):
    """With the keyboard alone: from the listing to the new-key form, fill it, create, go to the
    key, and revoke it (confirmation ticked with Space)."""
    b = state["js"]
    b.open("/keys", "keys")
    tab_to(b, "a#new-key")
    token = b.mark_document()
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    b.wait_for_next_document(token)
    b.loaded("keys-new")
    b.expect_path("/keys/new", "Enter on the new-key link")
    tab_to(b, "#new-key-form input[name=name]")
    ActionChains(b.driver).send_keys("by keyboard").perform()
    tab_to(b, "#new-key-form input[name=scopes]")
    ActionChains(b.driver).send_keys("orders:read").perform()
    tab_to(b, "#new-key-form button[type=submit]")
    token = b.mark_document()
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    b.wait_for_next_document(token)
    b.loaded("key-created-by-keyboard")
    key_id, key = read_issued(b, "key-created-by-keyboard", "create by keyboard")
    expect_code(state["verifier"], key, "VALID")
    tab_to(b, "a#key-link")
    token = b.mark_document()
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    b.wait_for_next_document(token)
    b.loaded("key-by-keyboard")
    tab_to(b, "form#revoke input#confirm-revoke")
    ActionChains(b.driver).send_keys(Keys.SPACE).perform()
    assert b.find("form#revoke input#confirm-revoke").is_selected(), "Space did not tick the confirmation"
    tab_to(b, "form#revoke button")
    token = b.mark_document()
    ActionChains(b.driver).send_keys(Keys.ENTER).perform()
    b.wait_for_next_document(token)
    b.loaded("key-revoked-by-keyboard")
    assert key_status(b) == "revoked", f"after revoking by keyboard the page shows {key_status(b)!r}"
    expect_code(state["verifier"], key, "REVOKED")


def flow_member_creates_keys(state):
    b = state["js"]
    verifier_id, verifier = create_key(b, "verifier", "keyward:verify", "30d")
    expect_code(verifier, verifier, "VALID")
    key_id, key = create_key(b, "ci", "orders:read orders:write", "90d")
    expect_code(verifier, key, "VALID")
    state.update(verifier=verifier, verifier_id=verifier_id, key=key, key_id=key_id, key_checks=1)
    b.open("/keys", "keys")
    for kid, name in ((verifier_id, "verifier"), (key_id, "ci")):
        row = b.find(f"table#keys tr[data-key-id='{kid}']")
        link = row.find_element(By.CSS_SELECTOR, f"a[href='/keys/{kid}']")
        assert link.text.strip() == name, f"the row of {kid} links {link.text!r}, not {name!r}"
        status = row.find_element(By.CSS_SELECTOR, "td.status").text.strip().lower()
        assert status == "active", f"the row of {name} shows status {status!r}"
    assert "orders:read" in b.find(f"table#keys tr[data-key-id='{key_id}']").text, "the key's scopes are not listed"


def flow_member_creates_key_with_every_field(state):
    """The new-key form's fields as the contract names them; a bad one answered on the form."""
    b = state["js"]
    b.open("/keys/new", "keys-new")
    form = "form#new-key-form[method=post][action='/keys']"
    for field in ("input[name=name]", "input[name=scopes]", "select[name=expires]",
                  "input[type=date][name=expires_on]", "input[name=rate_limit_max]",
                  "input[name=rate_limit_window]", "input[name=remaining]", "textarea[name=metadata]"):
        assert b.has(f"{form} {field}"), f"/keys/new has no {field} in {form}"
    options = [o.get_attribute("value") for o in b.find_all(f"{form} select[name=expires] option")]
    assert options == ["never", "7d", "30d", "90d", "365d", "date"], f"expires options: {options}"
    b.fill(f"{form} input[name=name]", "limited")
    b.fill(f"{form} input[name=scopes]", "orders:read")
    b.fill(f"{form} textarea[name=metadata]", '{"team": ')
    b.click_and_wait(b.find(f"{form} button[type=submit]"), "keys-new-error")
    assert b.status in (400, 422), f"metadata that is not JSON: expected 400 or 422, got {b.status}"
    assert b.has("p.error[role=alert]"), "metadata that is not JSON: no p.error[role=alert]"
    assert b.find("#new-key-form input[name=name]").get_attribute("value") == "limited", (
        "the form sent back lost what was typed"
    )
    b.choose("#new-key-form select[name=expires]", "date")
    # A date field is typed in the browser's locale; the value is what the form sends.
    b.driver.execute_script(
        "document.querySelector('#new-key-form input[name=expires_on]').value = '2027-01-15'"
    )
    b.fill("#new-key-form input[name=rate_limit_max]", "2")
    b.fill("#new-key-form input[name=rate_limit_window]", "1 minute")
    b.fill("#new-key-form input[name=remaining]", "5")
    b.fill("#new-key-form textarea[name=metadata]", '{"team": "billing"}')
    b.click_and_wait(b.find("#new-key-form button[type=submit]"), "key-created")
    key_id, key = read_issued(b, "key-created", "create with every field")
    expect_code(state["verifier"], key, "VALID")
    page = open_key(b, key_id, "key-limited").find("dl").text
    for shown in ("2027-01-15", "billing", "orders:read"):
        assert shown in page, f"the key's page does not show {shown!r}: {page!r}"
    assert re.search(r"\b2\b", page) and re.search(r"\b[45]\b", page), (
        f"the key's page shows neither its rate limit (2) nor its credits: {page!r}"
    )


def flow_plaintext_is_never_shown_again(state):
    b = state["js"]
    key_id, key = create_key(b, "shown once", "orders:read", "7d", page="key-created")
    state["once_id"] = key_id
    b.click_and_wait(b.find("a#key-link"), "key")
    b.expect_path(f"/keys/{key_id}", "#key-link")
    assert key not in b.source(), "the key's page shows the plaintext"
    b.driver.back()
    time.sleep(1)
    b.wait_until_complete()
    b.read_network()
    b.screenshot("key-created-after-back")
    shown = [e.text for e in b.find_all("code#plaintext")]
    assert key not in b.source(), f"going back shows the plaintext again (at {b.driver.current_url})"
    assert not shown, f"going back made and showed another key: {shown}"


def flow_usage_chart_counts_verifications(state):
    b = state["js"]
    for _ in range(3):
        expect_code(state["verifier"], state["key"], "VALID")
    state["key_checks"] += 3
    expected = state["key_checks"]
    deadline = time.time() + USAGE_WAIT
    titles = []
    while True:
        open_key(b, state["key_id"], "key")
        assert b.has("svg#usage-chart"), "the key's page has no svg#usage-chart"
        titles = [
            t.get_attribute("textContent").strip()
            for t in b.find_all("svg#usage-chart rect title")
        ]
        counts = {}
        for title in titles:
            match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}) ([A-Z_]+): (\d+)", title)
            assert match, f"a bar's title is {title!r}, not like '2026-11-30 VALID: 3'"
            counts[match.group(2)] = counts.get(match.group(2), 0) + int(match.group(3))
        if counts.get("VALID") == expected:
            break
        assert time.time() < deadline, (
            f"after {USAGE_WAIT} s the chart's bars say {titles}, not VALID: {expected} in all"
        )
        time.sleep(1)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert any(t == f"{today} VALID: {expected}" for t in titles), f"no bar '{today} VALID: {expected}': {titles}"
    b.screenshot("key-with-usage")


def flow_member_renames_key(state):
    b = state["js"]
    open_key(b, state["key_id"])
    form = f"form#rename[method=post][action='/keys/{state['key_id']}']"
    b.fill(f"{form} input[name=name]", "ci renamed")
    b.click_and_wait(b.find(f"{form} button, {form} [type=submit]"), "key")
    assert "ci renamed" in b.source(), "the new name is not shown after renaming"
    b.open("/keys", "keys")
    row = b.find(f"table#keys tr[data-key-id='{state['key_id']}']")
    assert "ci renamed" in row.text, f"the list shows {row.text!r} after renaming"


def flow_member_pauses_and_resumes_key(state):
    b = state["js"]
    open_key(b, state["key_id"])
    pause = "form#pause"
    assert b.find(f"{pause} input[name=enabled]").get_attribute("value") == "false"
    b.click_and_wait(b.find(f"{pause} button"), "key")
    status = b.find("#status")
    assert status.text == "paused", f"the key's status reads {status.text!r} after pausing"
    b.screenshot("key-paused")
    b.open("/keys", "keys")
    row = b.find(f"table#keys tr[data-key-id='{state['key_id']}']")
    assert "paused" in row.text, f"the list shows {row.text!r} for a paused key"
    open_key(b, state["key_id"])
    assert b.find(f"{pause} input[name=enabled]").get_attribute("value") == "true"
    b.click_and_wait(b.find(f"{pause} button"), "key")
    assert b.find("#status").text == "active", "the key is active again after resuming"


def flow_rotate_with_grace(state):
    b = state["js"]
    options = [o.get_attribute("value") for o in (open_key(b, state["key_id"]).find_all("form#rotate select[name=grace_period] option"))]
    assert options == ["0", "10m", "1h", "24h", "7d"], f"grace period options: {options}"
    new_id, new_key = rotate(b, state["key_id"], "10m")
    assert new_key != state["key"], "rotation showed the old key"
    expect_code(state["verifier"], state["key"], "VALID")
    expect_code(state["verifier"], new_key, "VALID")
    state.update(old_key=state["key"], key=new_key, key_id=new_id)


def flow_revoke_with_confirmation(state):
    b = state["js"]
    revoke(b, state["key_id"])
    expect_code(state["verifier"], state["key"], "REVOKED")
    if b.path != f"/keys/{state['key_id']}":
        open_key(b, state["key_id"], "key-revoked")
    assert key_status(b) == "revoked", f"#status reads {key_status(b)!r} after revoking"
    b.open("/keys", "keys")
    status = b.find(f"table#keys tr[data-key-id='{state['key_id']}'] td.status").text.strip().lower()
    assert status == "revoked", f"the list shows status {status!r} for the revoked key"


def flow_keys_filter(state):
    b = state["js"]
    b.open("/keys", "keys")
    b.choose("form#filter[method=get] select[name=status]", "revoked")
    b.click_and_wait(b.find("form#filter button, form#filter [type=submit]"), "keys-filtered")
    ids = [r.get_attribute("data-key-id") for r in b.find_all("table#keys tr[data-key-id]")]
    statuses = [s.text.strip().lower() for s in b.find_all("table#keys tr[data-key-id] td.status")]
    assert state["key_id"] in ids, f"status=revoked does not list the revoked key: {ids}"
    assert set(statuses) == {"revoked"}, f"status=revoked lists statuses {statuses}"
    b.open("/keys", "keys")
    b.fill("form#filter input[name=q]", "verifier")
    b.click_and_wait(b.find("form#filter button, form#filter [type=submit]"), "keys-filtered")
    ids = [r.get_attribute("data-key-id") for r in b.find_all("table#keys tr[data-key-id]")]
    assert ids == [state["verifier_id"]], f"q=verifier lists {ids}, not only the verifier {state['verifier_id']}"


def flow_form_without_csrf_is_forbidden(state):
    b = state["js"]
    cookie = b.cookie()["value"]
    body = urllib.parse.urlencode(
        {"name": "no token", "scopes": "", "expires": "never", "metadata": ""}
    ).encode()
    status, _, text = http(
        "POST",
        "/keys",
        {"Cookie": f"{SESSION_COOKIE}={cookie}", "Content-Type": "application/x-www-form-urlencoded"},
        body,
    )
    assert status == 403, f"POST /keys without csrf: expected 403, got {status}"
    assert "<h1>Forbidden</h1>" in text, f"POST /keys without csrf: no <h1>Forbidden</h1> in {text[:300]!r}"
    # The same in the browser: the token taken out of the form, which is then sent.
    b.open("/keys/new", "keys-new")
    b.driver.execute_script("document.querySelectorAll('#new-key-form input[name=csrf]').forEach(i => i.remove())")
    b.fill("#new-key-form input[name=name]", "no token either")
    b.click_and_wait(b.find("#new-key-form button[type=submit], #new-key-form button:not([type])"), "forbidden")
    b.expect_status(403, "the new-key form sent without its csrf input")
    assert b.text("h1") == "Forbidden", f"the 403 page's heading is {b.text('h1')!r}"
    b.open("/keys", "keys")
    assert "no token" not in b.find("table#keys").text, "a form without its CSRF token created a key"


def flow_member_signs_out(state):
    sign_out(state["js"])


def flow_other_members_key_is_not_found(state):
    b = state["js"]
    sign_in(b, "bob@example.com", OTHER_PASSWORD, landing="keys-of-another-member")
    for kid in (state["verifier_id"], state["key_id"]):
        b.open(f"/keys/{kid}", "not-found")
        b.expect_status(404, f"bob opening ann's key /keys/{kid}")
        assert b.text("h1") == "Not found", f"the 404 page's heading is {b.text('h1')!r}"
    assert "verifier" not in b.find("body").text, "the 404 page shows ann's key's name"
    b.open("/keys", "keys-of-another-member")
    assert not b.find_all("table#keys tr[data-key-id]"), "bob's list shows keys he does not own"
    sign_out(b)


def flow_nojs_sign_in(state):
    b = state["nojs"]
    sign_in(b, "ann@example.com", MEMBER_PASSWORD)
    b.expect_status(200, "GET /keys without JavaScript")


def flow_nojs_create_rotate_revoke(state):
    b = state["nojs"]
    key_id, key = create_key(b, "no script", "orders:read", "30d")
    expect_code(state["verifier"], key, "VALID")
    b.click_and_wait(b.find("a#key-link"), "key")
    b.expect_path(f"/keys/{key_id}", "#key-link without JavaScript")
    assert key not in b.source(), "the key's page shows the plaintext"
    new_id, new_key = rotate(b, key_id, "10m")
    expect_code(state["verifier"], key, "VALID")
    expect_code(state["verifier"], new_key, "VALID")
    revoke(b, new_id)
    expect_code(state["verifier"], new_key, "REVOKED")
    if b.path != f"/keys/{new_id}":
        open_key(b, new_id, "key-revoked")
    assert key_status(b) == "revoked", f"#status reads {key_status(b)!r} after revoking without JavaScript"


def same_origin(url):
    return urllib.parse.urlsplit(url)[:2] == urllib.parse.urlsplit(BASE)[:2]


def opblock(b, operation_id):
    """The CSS selector of Swagger UI's block of the operation `operation_id`."""
    found = b.driver.execute_script(
        """
        for (const id of document.querySelectorAll('.opblock .opblock-summary-operation-id'))
          if (id.textContent.trim() === arguments[0]) return id.closest('.opblock').id;
        return null;
        """,
        operation_id,
    )
    assert found, f"/docs/ shows no operation {operation_id}"
    return f"#{found}"


def live_status(b, op):
    """The status of the live response shown in the operation `op`, or None."""
    cells = b.find_all(f"{op} .live-responses-table tbody tr.response td.response-col_status")
    return cells[0].text.strip() if cells else None


def execute(b, operation_id, status):
    """Opens the operation in Swagger UI, tries it out and waits for the live response `status`:
    (the Request URL shown, the response body shown)."""
    op = opblock(b, operation_id)
    if b.find(f"{op} .opblock-summary-control").get_attribute("aria-expanded") != "true":
        b.find(f"{op} .opblock-summary-control").click()
    WebDriverWait(b.driver, WAIT).until(lambda d: b.has(f"{op} .try-out__btn"))
    # openapi.rs turns "Try it out" on for every operation: the button then reads "Cancel".
    try_out = b.find(f"{op} .try-out__btn")
    if try_out.text.strip() == "Try it out":
        try_out.click()
    WebDriverWait(b.driver, WAIT).until(lambda d: b.has(f"{op} button.execute"))
    b.find(f"{op} button.execute").click()
    try:
        WebDriverWait(b.driver, WAIT).until(lambda d: live_status(b, op) == str(status))
    except Exception:
        raise AssertionError(
            f"Execute on {operation_id}: expected a live response {status}, /docs/ shows {live_status(b, op)!r}"
        ) from None
    url = b.text(f"{op} .request-url pre")
    body = b.find(f"{op} .live-responses-table tbody tr.response .highlight-code pre").text
    return url, body


def flow_docs_page(state):
    """/docs: Swagger UI from the binary, every operation of the OpenAPI document shown, nothing
    loaded from elsewhere, no console error; "Try it out" reaches this keyward, and after
    Authorize with a member's key a call on its behalf answers 200."""
    b = state["js"]
    status, headers, _ = http("GET", "/docs")
    assert status == 308 and path_of(headers.get("Location")) == "/docs/", (
        f"GET /docs: expected 308 to /docs/, got {status} {headers.get('Location')}"
    )
    status, _, text = http("GET", "/api/v1/openapi.json")
    assert status == 200, f"GET /api/v1/openapi.json answered {status}"
    methods = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    documented = [
        op["operationId"]
        for item in json.loads(text)["paths"].values()
        for method, op in item.items()
        if method in methods
    ]
    # A member of a tenant of its own, with a key that may read keyward's API.
    admin = api_ok("POST", "/api/v1/auth/login", 200, {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    tenant = api_ok("POST", "/api/v1/tenants", 201, {"name": "Docs", "slug": "docs"}, admin["access_token"])
    api_ok(
        "POST",
        "/api/v1/users",
        201,
        {"email": "docs@example.com", "password": MEMBER_PASSWORD, "tenant_id": tenant["id"]},
        admin["access_token"],
    )
    member = api_ok("POST", "/api/v1/auth/login", 200, {"email": "docs@example.com", "password": MEMBER_PASSWORD})
    created = api_ok(
        "POST", "/api/v1/api-keys", 201, {"name": "swagger ui", "scopes": ["keyward:read"]}, member["access_token"]
    )

    # Swagger UI renders after the document is complete, once it has fetched the OpenAPI
    # document: the checks and the screenshot wait for the operations.
    b.driver.get(BASE + "/docs")
    b.wait_until_complete()
    b.expect_path("/docs/", "GET /docs in the browser")
    WebDriverWait(b.driver, WAIT).until(lambda d: len(b.find_all(".opblock")) >= len(documented))
    b.loaded("docs")
    b.expect_status(200, "GET /docs/")
    shown = [e.get_attribute("textContent").strip() for e in b.find_all(".opblock .opblock-summary-operation-id")]
    assert len(b.find_all(".opblock")) == len(documented), (
        f"/docs/ shows {len(b.find_all('.opblock'))} operations, the OpenAPI document has {len(documented)}"
    )
    assert sorted(shown) == sorted(documented), (
        f"/docs/ shows operations {sorted(set(shown) ^ set(documented))} that are not both shown and documented"
    )
    for op in ("getHealth", "verifyKey", "listApiKeys", "login"):
        assert op in shown, f"/docs/ does not show {op}"

    url, body = execute(b, "getHealth", 200)
    assert url == f"{BASE}/api/v1/health", f"Try it out on getHealth went to {url}, not this keyward"
    assert json.loads(body).get("status") == "ok", f"getHealth's response body shown: {body!r}"

    # Unauthorized first: refused (the browser's console logs that 401, which is expected).
    url, body = execute(b, "listApiKeys", 401)
    assert url == f"{BASE}/api/v1/api-keys", f"Try it out on listApiKeys went to {url}"
    b.check_console("docs", expected=[f"{BASE}/api/v1/api-keys - Failed to load resource: the server responded with a status of 401"])

    b.find("button.authorize").click()
    WebDriverWait(b.driver, WAIT).until(lambda d: b.has(".modal-ux input#api_key_value"))
    field = b.find(".modal-ux input#api_key_value")
    field.send_keys(created["key"])
    form = field.find_element(By.XPATH, "ancestor::form")
    form.find_element(By.CSS_SELECTOR, "button.authorize").click()
    WebDriverWait(b.driver, WAIT).until(
        lambda d: any(t.text.strip() == "Logout" for t in form.find_elements(By.CSS_SELECTOR, "button"))
    )
    b.find(".modal-ux button.close-modal").click()
    WebDriverWait(b.driver, WAIT).until(lambda d: not b.has(".modal-ux"))
    assert "locked" in b.find("button.authorize").get_attribute("class").split(), (
        "the Authorize button does not show the page as authorized"
    )
    url, body = execute(b, "listApiKeys", 200)
    assert created["id"] in body, f"listApiKeys, with the member's key, does not list it ({created['id']}): {body[:400]!r}"
    assert created["key"] not in body, "listApiKeys shows a key's plaintext"

    loaded = b.driver.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).map(e => e.name)"
    )
    foreign = [u for u in loaded if not same_origin(u)]
    assert not foreign, f"/docs/ loaded from elsewhere: {foreign}"
    for path in ("/docs/", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/api/v1/openapi.json",
                 "/api/v1/health", "/api/v1/api-keys"):
        assert BASE + path in loaded, f"/docs/ did not load {path}: {loaded}"
    b.screenshot("docs-tried-out")
    b.check_page("docs")


# (name, function, flows it needs). A flow runs when everything it needs passed.
FLOWS = [
    ("root_redirects", flow_root_redirects, []),
    ("wrong_password", flow_wrong_password, []),
    ("admin_signs_in", flow_admin_signs_in, []),
    ("admin_visits_every_page", flow_admin_visits_every_page, ["admin_signs_in"]),
    ("admin_creates_tenant_and_members", flow_admin_creates_tenant_and_members, ["admin_signs_in"]),
    ("admin_signs_out", flow_admin_signs_out, ["admin_signs_in"]),
    ("member_signs_in_by_keyboard", flow_member_signs_in_by_keyboard, ["admin_creates_tenant_and_members", "admin_signs_out"]),
    ("member_creates_keys", flow_member_creates_keys, ["member_signs_in_by_keyboard"]),
    ("member_creates_key_with_every_field", flow_member_creates_key_with_every_field, ["member_creates_keys"]),
    ("plaintext_is_never_shown_again", flow_plaintext_is_never_shown_again, ["member_signs_in_by_keyboard"]),
    ("usage_chart_counts_verifications", flow_usage_chart_counts_verifications, ["member_creates_keys"]),
    ("member_renames_key", flow_member_renames_key, ["member_creates_keys"]),
    ("keyboard_creates_and_revokes_a_key", flow_keyboard_creates_and_revokes_a_key, ["member_creates_keys"]),
    ("member_pauses_and_resumes_key", flow_member_pauses_and_resumes_key, ["member_renames_key"]),
    ("rotate_with_grace", flow_rotate_with_grace, ["member_creates_keys", "member_pauses_and_resumes_key"]),
    ("revoke_with_confirmation", flow_revoke_with_confirmation, ["rotate_with_grace"]),
    ("keys_filter", flow_keys_filter, ["revoke_with_confirmation"]),
    ("form_without_csrf_is_forbidden", flow_form_without_csrf_is_forbidden, ["member_signs_in_by_keyboard"]),
    ("member_signs_out", flow_member_signs_out, ["member_signs_in_by_keyboard"]),
    ("other_members_key_is_not_found", flow_other_members_key_is_not_found, ["member_creates_keys", "member_signs_out"]),
    ("docs_page", flow_docs_page, []),
    ("nojs_sign_in", flow_nojs_sign_in, ["admin_creates_tenant_and_members"]),
    ("nojs_create_rotate_revoke", flow_nojs_create_rotate_revoke, ["nojs_sign_in", "member_creates_keys"]),
]
# Flows that run only when named in KEYWARD_BROWSER_FLOWS.
EXTRA_FLOWS = []


def selected():
    """The flows to run: all, or those named in KEYWARD_BROWSER_FLOWS and what they need."""
    wanted = [n for n in os.environ.get("KEYWARD_BROWSER_FLOWS", "").split(",") if n]
    every = FLOWS + EXTRA_FLOWS
    if not wanted:
        return FLOWS
    by_name = {name: needs for name, _, needs in every}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        sys.exit(f"unknown flows {unknown}; flows: {[n for n, _, _ in every]}")
    keep, todo = set(), list(wanted)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name])
    return [f for f in every if f[0] in keep]


def main():
    os.makedirs(SCREENSHOTS, exist_ok=True)
    for old in os.listdir(SCREENSHOTS):
        if old.endswith(".png"):
            os.remove(os.path.join(SCREENSHOTS, old))
    flows = selected()
    started = time.time()
    state = {}
    results = {}
    try:
        state["js"] = Browser("js", javascript=True)
        if any(name.startswith("nojs_") for name, _, _ in flows):
            state["nojs"] = Browser("nojs", javascript=False)
        for name, flow, needs in flows:
            missing = [n for n in needs if results.get(n) != "passed"]
            if missing:
                results[name] = "skipped"
                print(f"SKIP {name}: needs {', '.join(missing)}", flush=True)
                continue
            t = time.time()
            try:
                flow(state)
                results[name] = "passed"
                print(f"PASS {name} ({time.time() - t:.1f} s)", flush=True)
            except Exception as e:  # a flow's failure is reported and the others go on
                results[name] = "failed"
                where = state["js"].driver.current_url if "js" in state else "?"
                print(f"FAIL {name} ({time.time() - t:.1f} s): {type(e).__name__}: {e}", flush=True)
                print(f"     last page: {where}", flush=True)
                print("     " + traceback.format_exc().replace("\n", "\n     "), flush=True)
    finally:
        for b in ("js", "nojs"):
            if b in state:
                state[b].quit()
    for finding in page_findings:
        print(f"FAIL page check: {finding}", flush=True)
    passed = sum(1 for r in results.values() if r == "passed")
    failed = sum(1 for r in results.values() if r == "failed") + len(page_findings)
    skipped = sum(1 for r in results.values() if r == "skipped")
    shots = sorted(p for p in os.listdir(SCREENSHOTS) if p.endswith(".png"))
    print(f"screenshots in {SCREENSHOTS}: {', '.join(shots)}")
    print(f"browser flows: {passed} passed, {failed} failed, {skipped} skipped in {time.time() - started:.1f} s")
    return 0 if failed == 0 and skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
