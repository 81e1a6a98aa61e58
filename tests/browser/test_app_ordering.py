"""The todo app stays consistent when the network answers out of order: one list per sign-in, no todo
drawn twice, no stale filter answer drawn over a newer one.

Playwright routing holds chosen requests or answers back, so each race happens every time rather than
once in a while on a busy machine (where it was first seen: a todo drawn twice after "Add").
"""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.support.accounts import STRONG_PASSWORD
from tests.support.browser import assert_clean, sign_in_in_app

EMAIL = "olive@example.com"


@pytest.fixture
def olive(site, make_user):
    from todos.models import Todo

    user = make_user(email=EMAIL, name="Olive")
    Todo.objects.create(owner=user, title="Water the plants")
    Todo.objects.create(owner=user, title="File the taxes", completed=True)
    return user


@pytest.fixture
def app(page, olive):
    """The todo app, signed in as Olive, her list drawn."""
    page.goto("/app/")
    sign_in_in_app(page, EMAIL, STRONG_PASSWORD)
    expect(page.get_by_text("Water the plants", exact=True)).to_be_visible()
    return page


def wait_until(page, condition, timeout: float = 10.0) -> None:
    """Let the browser run (routes and events are handled while it waits) until condition() is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the browser"
        page.wait_for_timeout(20)


def settle(page) -> None:
    """Give the app's scripts a moment to act on an answer the browser has received."""
    page.evaluate("() => new Promise((done) => setTimeout(done, 250))")


def todo_lists_requested(requests) -> int:
    return sum(1 for request in requests if request.method == "GET" and "/api/todos/?" in request.url)


def test_signing_in_in_the_app_loads_the_list_once(page, olive):
    requests = []
    page.on("request", lambda request: requests.append(request))
    page.goto("/app/")
    sign_in_in_app(page, EMAIL, STRONG_PASSWORD)
    expect(page.get_by_text("Water the plants", exact=True)).to_be_visible()
    settle(page)

    assert todo_lists_requested(requests) == 1
    assert_clean(page)


def test_a_list_answer_that_overtakes_the_add_answer_does_not_draw_the_todo_twice(app):
    page = app
    held_answers = []

    def hold_the_add_answer(route):
        if route.request.method == "POST":
            held_answers.append((route, route.fetch()))  # the server has saved the todo; the app does not know yet
        else:
            route.fallback()

    page.route(re.compile(r"/api/todos/$"), hold_the_add_answer)
    page.get_by_label("New todo").fill("Pick up the parcel")
    page.get_by_role("button", name="Add", exact=True).click()
    wait_until(page, lambda: held_answers)

    # A list load that reaches the server after the add: its answer already holds the new todo.
    page.get_by_label("Open", exact=True).check()
    expect(page.get_by_text("Pick up the parcel", exact=True)).to_have_count(1)

    route, answer = held_answers[0]
    route.fulfill(response=answer)
    expect(page.locator("#announcer")).to_have_text("Added “Pick up the parcel”.")
    settle(page)
    expect(page.get_by_text("Pick up the parcel", exact=True)).to_have_count(1)
    expect(page.get_by_text("Water the plants", exact=True)).to_have_count(1)
    assert_clean(page)


def test_an_older_filter_answer_does_not_replace_a_newer_one(app):
    page = app
    held_requests = []
    page.route(re.compile(r"/api/todos/\?.*completed=true"), lambda route: held_requests.append(route))
    page.get_by_label("Completed", exact=True).check()
    wait_until(page, lambda: held_requests)

    page.get_by_label("Open", exact=True).check()
    expect(page.get_by_text("Water the plants", exact=True)).to_be_visible()

    with page.expect_response(re.compile(r"completed=true")):
        held_requests[0].continue_()
    settle(page)
    expect(page.get_by_text("Water the plants", exact=True)).to_be_visible()
    expect(page.get_by_text("File the taxes", exact=True)).to_have_count(0)
    assert_clean(page)
