"""Selenium helpers the dashboard tests share: waiting on conditions (never
on time), finding, reading and driving elements of the single-page app."""
import urllib.error
import urllib.request

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def wait(driver, cond, timeout=30, what='condition'):
    # Pages re-render as data arrives: an element found a moment ago may be gone.
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                         ).until(cond, message=f'timed out waiting for {what}')


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def one(driver, selector, timeout=30):
    return wait(driver, lambda d: (css(d, selector) or [None])[0], timeout, selector)


def attr(driver, selector, name):
    """An attribute of the first element matching `selector`, or None (no element, or it went away)."""
    els = css(driver, selector)
    return els[0].get_attribute(name) if els else None


def text_of(driver, selector):
    return one(driver, selector).get_attribute('textContent')


def click(driver, selector):
    el = one(driver, selector)
    driver.execute_script('arguments[0].scrollIntoView({block: "center"})', el)
    el.click()
    return el


def go(driver, server, fragment):
    # A fresh page load: a new hash alone would keep what an earlier test left in a form.
    driver.get('about:blank')
    driver.get(f'{server.url}/#{fragment}')


def fragment(driver):
    return driver.current_url.split('#', 1)[-1]


def set_text(driver, el, text):
    """Replaces a textarea's content and tells the page, as typing would
    (typing a whole file key by key is slow and adds nothing)."""
    driver.execute_script(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", el, text)


def get_status(server, path):
    """The status of a GET of `path` with the server's token."""
    try:
        with urllib.request.urlopen(urllib.request.Request(server.url + path, headers=server.auth),
                                    timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def js_errors(driver):
    """Errors from the page's scripts; a refused request (the 400s a test provokes) is not one."""
    return [e['message'] for e in driver.get_log('browser')
            if e['level'] == 'SEVERE' and 'favicon' not in e['message'] and 'Failed to load resource' not in e['message']]
