"""Logging in to the dashboard, in a real headless Chromium of its own
(a fresh profile: no session): the dashboard without a session sends the
browser to the login page, a wrong token is refused there with a message,
the right one lands on the dashboard, and a page whose session ends goes
back to the login page and, logged in again, returns where it was.

Every wait is on browser state with a deadline, never a fixed sleep."""
import urllib.parse

import pytest

from conftest import new_browser, session_cookies
from page import wait, css, one

WRONG = 'oxf_' + '0' * 64


@pytest.fixture
def fresh(server):
    d = new_browser()
    yield d
    d.quit()


def on_login_page(d, server):
    u = urllib.parse.urlparse(d.current_url)
    return f'{u.scheme}://{u.netloc}' == server.url and u.path == '/login'


def next_of(d):
    return urllib.parse.parse_qs(urllib.parse.urlparse(d.current_url).query).get('next')


def log_in(d, token):
    field = one(d, 'form[action="/login"] input[name="token"]')
    field.clear()
    field.send_keys(token)
    one(d, 'form[action="/login"] button[type="submit"]').click()


def test_without_a_session_the_dashboard_sends_the_browser_to_the_login_page(server, fresh, shots):
    d = fresh
    d.get(server.url + '/')
    wait(d, lambda d: on_login_page(d, server), what='the login page')
    assert next_of(d) == ['/'], d.current_url
    assert one(d, 'input#token').get_attribute('type') == 'password'
    assert not css(d, '#nav-list'), 'the dashboard showed without a session'
    assert not session_cookies(d)
    d.save_screenshot(str(shots / 'login.png'))
    # An API path opened in the browser shows the login page too, not data.
    d.get(server.url + '/apis/v2beta1/experiments?page_size=5')
    wait(d, lambda d: on_login_page(d, server), what='the login page for an API path')
    assert next_of(d) == ['/apis/v2beta1/experiments?page_size=5'], d.current_url
    assert 'experiments' not in one(d, 'main').text.lower()


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_dashboard(server, fresh, shots):
    d = fresh
    d.get(server.url + '/')
    wait(d, lambda d: on_login_page(d, server), what='the login page')
    log_in(d, WRONG)
    error = one(d, '#login-error')
    assert "not this server's token" in error.text, error.text
    assert on_login_page(d, server), d.current_url
    assert not session_cookies(d)
    assert not css(d, '#nav-list')
    d.save_screenshot(str(shots / 'login-wrong-token.png'))

    log_in(d, server.token)
    wait(d, lambda d: d.current_url.split('#', 1)[0] == server.url + '/', what='the dashboard after logging in')
    one(d, '.cards .card')
    labels = [a.text for a in css(d, '#nav-list a')]
    assert any('Pipelines' in x for x in labels), labels
    assert len(session_cookies(d)) == 1
    # The session is HttpOnly: the page's scripts cannot read it.
    assert 'oxflow_session_' not in d.execute_script('return document.cookie')
    assert 'oxflow_csrf_' in d.execute_script('return document.cookie')
    status = d.execute_async_script(
        "const done = arguments[0];"
        "fetch('/apis/v2beta1/experiments').then(r => done(r.status), e => done(String(e)));")
    assert status == 200


def test_a_page_whose_session_ended_logs_in_again_and_returns(server, fresh):
    d = fresh
    d.get(server.url + '/login')
    log_in(d, server.token)
    wait(d, lambda d: d.current_url.split('#', 1)[0] == server.url + '/', what='the dashboard')
    d.get(server.url + '/#/runs')
    one(d, '#state-filter')  # the runs page, with or without runs
    # The session ends (its cookie is gone); the next request the page makes is refused.
    [name] = session_cookies(d)
    d.delete_cookie(name)
    d.execute_script("window.location.hash = '#/experiments'")
    wait(d, lambda d: on_login_page(d, server), what='the login page after the session ended')
    assert next_of(d) == ['/#/experiments'], d.current_url
    log_in(d, server.token)
    wait(d, lambda d: d.current_url == server.url + '/#/experiments', what='the page the session ended on')
    one(d, 'main h1')
    assert len(session_cookies(d)) == 1
